"""The Java ShareTool (KafkaShareConsumer and the Admin client's share group calls) as a
fixture for the share group tests."""

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def share_tool():
    """Runs java ShareTool; returns one JSON result per operation, in order."""
    from conftest import TOOLS, run_tool

    if not (TOOLS / "java-classes" / "ShareTool.class").is_file():
        pytest.fail("Java ShareTool not compiled: run scripts/setup-clients")
    cp = f"{TOOLS / 'java-classes'}{os.pathsep}{TOOLS / 'java-libs'}/*"

    def run(broker, *ops):
        """Each op is a list (["describe", group]); returns one result per op, in order."""
        args = [str(a) for i, op in enumerate(ops) for a in ([] if i == 0 else ["--"]) + list(op)]
        cmd = [shutil.which("java") or "java", "-cp", cp, "ShareTool", broker.bootstrap] + args
        return run_tool(cmd, "java ShareTool " + " ".join(op[0] for op in ops))["results"]

    return run
