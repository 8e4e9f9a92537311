"""Soak: a longer run with many faults, chosen at random from a seed (the seed fixes the
schedule: which node, which fault, how long; timing still varies run to run).

Faults: kill -9 (of a partition leader or of any node) then restart; SIGSTOP past the broker
session timeout then SIGCONT; SIGTERM then restart. After each, the cluster must heal (every
broker registered, every ISR full) before the next. Load: confluent-kafka and Java
idempotent producers, confluent-kafka and kafka-python observers.

Runs only with STROM_CLUSTER_TESTS=1 STROM_CLUSTER_SOAK=1. STROM_CLUSTER_SOAK_S sets the
length (default 120 s of faults), STROM_CLUSTER_SEED the schedule (default: random,
printed; a failure names it).
"""

import os
import random
import time

import pytest

from cluster_fixtures import SESSION_S, Run, make_cluster  # noqa: F401 (fixture)

SOAK_S = float(os.environ.get("STROM_CLUSTER_SOAK_S", "120"))
SEED = int(os.environ.get("STROM_CLUSTER_SEED", str(random.SystemRandom().randrange(1 << 32))))

pytestmark = [pytest.mark.cluster, pytest.mark.soak]


@pytest.mark.timeout(SOAK_S + 600)
def test_soak_random_faults_under_load(make_cluster, topic_name):
    rng = random.Random(SEED)
    cluster = make_cluster(3)
    run = Run(cluster, topic_name, partitions=6)
    run.note(f"seed {SEED} (STROM_CLUSTER_SEED={SEED} replays this schedule)")
    run.start({"confluent": 1500, "java": 1000}, observers=("confluent", "kafka_python"))
    run.load_for(3)
    end = time.monotonic() + SOAK_S
    faults = 0
    while time.monotonic() < end:
        fault = rng.choice(["kill-leader", "kill-any", "pause-leader", "sigterm"])
        partition = rng.randrange(run.partitions)
        if fault in ("kill-leader", "pause-leader"):
            node = cluster[cluster.leader(topic_name, partition)]
        else:
            node = cluster[rng.choice(sorted(cluster.nodes))]
        faults += 1
        if fault == "pause-leader":
            node.pause()
            run.note(f"fault {faults}: SIGSTOP {node} (leader of partition {partition})")
            run.wait_new_leader(partition, node)
            run.load_for(rng.uniform(1, SESSION_S / 2))
            node.resume()
            run.note(f"SIGCONT {node}")
            run.wait_healed()
        else:
            if fault == "sigterm":
                code = node.stop()
                run.note(f"fault {faults}: SIGTERM {node}: exited {code}")
                if code != 0:
                    run.history.problem("unclean-shutdown", f"{node} exited {code} on SIGTERM")
            else:
                node.kill()
                run.note(f"fault {faults}: kill -9 {node}" + (f" (leader of partition {partition})"
                                                               if fault == "kill-leader" else ""))
            run.wait_leaders_live()
            run.load_for(rng.uniform(0.5, 4))
            run.restart(node)
        run.load_for(rng.uniform(1, 4))
    run.note(f"{faults} faults; seed {SEED}")
    run.finish().assert_ok()
