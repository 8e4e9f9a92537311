"""The Java ShareTool (KafkaShareConsumer and the Admin client's share group calls) as a
fixture for the share group tests."""

import os
import shutil
import time

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


def start_offsets(share_tool, broker, group):
    """{(topic, partition): start offset} as the Java Admin's listShareGroupOffsets says."""
    [result] = share_tool(broker, ["offsets", group])
    return {(t, p): start for t, p, start, _ in result["offsets"]}


def java_start_offset(share_tool, broker, group, topic, want):
    """Partition 0's start offset per the Java Admin once it is `want` (bounded), else the
    last one seen."""
    deadline = time.monotonic() + 20
    while True:
        got = start_offsets(share_tool, broker, group).get((topic, 0))
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)
