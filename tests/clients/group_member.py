"""A long-running consumer-group member driven over stdin/stdout, for confluent-kafka
(librdkafka) and kafka-python. `group_members.py` starts it; the protocol is the same for
every client (js/group_member.js, java/GroupMember.java):

    python group_member.py KIND key=value...        KIND: confluent | kafka_python

options: bootstrap, topic, group, client_id, session_timeout_ms, heartbeat_interval_ms,
assignor (range | roundrobin | cooperative-sticky), instance_id, commit_on_revoke (1: commit
what was received, synchronously, before partitions are revoked, also on close), max_s (the
process exits after this many seconds whatever happens).

stdout, one JSON object a line:
    {"ev":"assigned","partitions":[...],"assignment":[...]}   (assignment: all it owns now)
    {"ev":"revoked","partitions":[...],"assignment":[...]}
    {"ev":"lost","partitions":[...],"assignment":[...]}
    {"ev":"records","records":[[partition, offset, key], ...]}
    {"ev":"committed","offsets":[[partition, next_offset], ...]}
    {"ev":"status","assignment":[...],"generation":G or null,"member_id":...}
    {"ev":"error","message":...}
    {"ev":"closed"}
With STROM_GROUP_MEMBER_DEBUG set, the client's debug log goes to stderr.
stdin, one command a line: commit (commit what was received so far, synchronously) |
status | close (leave the group as the client does on close, then exit).
"""

import json
import logging
import os
import queue
import sys
import threading
import time

POLL_S = 0.1


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_commands(commands):
    for line in sys.stdin:
        commands.put(line.strip())
    commands.put("close")


class ConfluentMember:
    def __init__(self, opts):
        from confluent_kafka import Consumer

        conf = {
            "bootstrap.servers": opts["bootstrap"],
            "group.id": opts["group"],
            "client.id": opts.get("client_id", "confluent-member"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(opts.get("session_timeout_ms", 6000)),
            "heartbeat.interval.ms": int(opts.get("heartbeat_interval_ms", 500)),
            "partition.assignment.strategy": opts.get("assignor", "range"),
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 3,
        }
        if opts.get("instance_id"):
            conf["group.instance.id"] = opts["instance_id"]
        self.owned = set()
        self.commit_on_revoke = opts.get("commit_on_revoke") == "1"
        self.c = Consumer(conf)
        self.c.subscribe([opts["topic"]], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)

    def _change(self, ev, parts, add):
        ps = sorted(p.partition for p in parts)
        self.owned = self.owned | set(ps) if add else self.owned - set(ps)
        emit({"ev": ev, "partitions": ps, "assignment": sorted(self.owned)})

    # The binding assigns (eager) or incrementally assigns (cooperative) after the callback
    # returns when the callback does not, so these only record the change.
    def on_assign(self, c, parts):
        self._change("assigned", parts, True)

    def on_revoke(self, c, parts):
        if self.commit_on_revoke and parts:
            self.commit()
        self._change("revoked", parts, False)

    def on_lost(self, c, parts):
        self._change("lost", parts, False)

    def poll(self):
        msgs = self.c.consume(num_messages=500, timeout=POLL_S)
        out = []
        for m in msgs:
            if m.error():
                emit({"ev": "error", "message": str(m.error())})
                continue
            out.append([m.partition(), m.offset(), (m.key() or b"").decode()])
        return out

    def commit(self):
        try:
            done = self.c.commit(asynchronous=False)
        except Exception as e:  # KafkaException with _NO_OFFSET when nothing was consumed
            emit({"ev": "error", "message": f"commit: {e}"})
            return
        emit({"ev": "committed", "offsets": sorted([tp.partition, tp.offset] for tp in done)})

    def status(self):
        return {"generation": None, "member_id": self.c.memberid()}

    def close(self):
        self.c.close()


class KafkaPythonMember:
    def __init__(self, opts):
        from kafka import KafkaConsumer
        from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        assignors = {
            "range": RangePartitionAssignor,
            "roundrobin": RoundRobinPartitionAssignor,
            "cooperative-sticky": CooperativeStickyAssignor,
        }
        member = self

        # kafka-python 3 runs listeners on its IO loop, where a blocking commit() is refused;
        # its async listener may await the commit instead (through the coordinator, as the
        # public commit() does).
        class Listener(AsyncConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                if member.commit_on_revoke and revoked:
                    await member.commit_in_loop(revoked)
                member._change("revoked", revoked, False)

            async def on_partitions_assigned(self, assigned):
                member._change("assigned", assigned, True)

            async def on_partitions_lost(self, lost):
                member._change("lost", lost, False)

        kwargs = dict(
            bootstrap_servers=opts["bootstrap"],
            group_id=opts["group"],
            client_id=opts.get("client_id", "kafka-python-member"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(opts.get("session_timeout_ms", 6000)),
            heartbeat_interval_ms=int(opts.get("heartbeat_interval_ms", 500)),
            partition_assignment_strategy=(assignors[opts.get("assignor", "range")],),
            metadata_max_age_ms=1000,
        )
        if opts.get("instance_id"):
            kwargs["group_instance_id"] = opts["instance_id"]
        self.owned = set()
        self.commit_on_revoke = opts.get("commit_on_revoke") == "1"
        self.next = {}
        self.c = KafkaConsumer(**kwargs)
        self.c.subscribe([opts["topic"]], listener=Listener())

    def _change(self, ev, parts, add):
        ps = sorted(p.partition for p in parts)
        self.owned = self.owned | set(ps) if add else self.owned - set(ps)
        emit({"ev": ev, "partitions": ps, "assignment": sorted(self.owned)})

    def poll(self):
        batches = self.c.poll(timeout_ms=int(POLL_S * 1000), max_records=500)
        out = []
        for tp, recs in batches.items():
            out.extend([tp.partition, r.offset, (r.key or b"").decode()] for r in recs)
            if recs:
                self.next[tp] = recs[-1].offset + 1
        return out

    def commit(self):
        from kafka.structs import OffsetAndMetadata

        offsets = {tp: OffsetAndMetadata(self.c.position(tp), "", -1) for tp in self.c.assignment()}
        try:
            self.c.commit(offsets)
        except Exception as e:
            emit({"ev": "error", "message": f"commit: {e!r}"})
            return
        emit({"ev": "committed", "offsets": sorted([tp.partition, om.offset] for tp, om in offsets.items())})

    async def commit_in_loop(self, parts):
        from kafka.structs import OffsetAndMetadata

        # What was received, not the subscription state's positions: kafka-python has already
        # dropped cooperatively revoked partitions from those when the listener runs.
        offsets = {tp: OffsetAndMetadata(self.next[tp], "", -1) for tp in parts if tp in self.next}
        try:
            await self.c._coordinator._commit_offsets_sync_async(offsets, timeout_ms=15000)
        except Exception as e:
            emit({"ev": "error", "message": f"commit: {e!r}"})
            return
        emit({"ev": "committed", "offsets": sorted([tp.partition, om.offset] for tp, om in offsets.items())})

    def status(self):
        gen = getattr(self.c._coordinator, "_generation", None)
        return {"generation": getattr(gen, "generation_id", None), "member_id": getattr(gen, "member_id", None)}

    def close(self):
        self.c.close()


def main():
    if os.environ.get("STROM_GROUP_MEMBER_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    kind = sys.argv[1]
    opts = dict(a.split("=", 1) for a in sys.argv[2:])
    deadline = time.monotonic() + float(opts.get("max_s", 170))
    member = {"confluent": ConfluentMember, "kafka_python": KafkaPythonMember}[kind](opts)
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    while time.monotonic() < deadline:
        try:
            records = member.poll()
        except Exception as e:
            emit({"ev": "error", "message": f"poll: {e!r}"})
            time.sleep(POLL_S)
            records = []
        if records:
            emit({"ev": "records", "records": records})
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd == "commit":
                member.commit()
            elif cmd == "status":
                emit({"ev": "status", "assignment": sorted(member.owned), **member.status()})
            elif cmd == "close":
                member.close()
                emit({"ev": "closed"})
                return
    member.close()
    emit({"ev": "closed"})


if __name__ == "__main__":
    main()
