"""Steady load and observers for the cluster tests, each recording into a `checker.History`.

Producers (each writes unique values `<name>-<seq>`, key = value, to partition seq % P at a
fixed rate, acks=all, and records every delivery report):
- `ConfluentProducer`: confluent-kafka (librdkafka), idempotent;
- `KafkaPythonProducer`: kafka-python, idempotent;
- `JavaProducer`: the Java client, idempotent, as `java StromClientTool load` (a process).

Observers: `ConfluentObserver` and `KafkaPythonObserver` assign every partition from the
beginning and poll throughout, never seeking. `final_read` reads every partition from the
beginning to its end offset with a fresh confluent-kafka consumer.

All of them run until told to stop; every wait is bounded.
"""

import json
import os
import shutil
import subprocess
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import TOOLS

# librdkafka's error_cb reports connection-level events (a broker went away, all brokers
# down); they fail no operation, so they are kept in the history as retriable.
CONNECTION_EVENTS = {
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._TIMED_OUT,
}


class _Rate:
    """How many records are due after `elapsed` seconds at `rate` a second."""

    def __init__(self, rate):
        self.rate, self.start = rate, time.monotonic()

    def due(self):
        return int((time.monotonic() - self.start) * self.rate)


class ConfluentProducer:
    def __init__(self, history, bootstrap, topic, partitions, rate, name="confluent", **conf):
        self.history, self.topic, self.partitions, self.rate, self.name = history, topic, partitions, rate, name
        history.idempotent.add(name)
        config = {
            "bootstrap.servers": bootstrap,
            "client.id": name,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 45000,
            "request.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 3,
            "error_cb": self._on_error,
        }
        config.update(conf)
        self.p = Producer(config)
        self._stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _on_error(self, err):
        retriable = err.retriable() or err.code() in CONNECTION_EVENTS
        self.history.error(f"{self.name}:client", err.name(), err.str(), retriable, err.fatal())

    def _on_delivery(self, err, msg):
        if err is None:
            self.history.ack(self.name, msg.partition(), msg.offset(), msg.value().decode())
        else:
            self.history.error(f"{self.name}:delivery", err.name(), err.str(), err.retriable(), err.fatal())

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        rate = _Rate(self.rate)
        while not self._stop.is_set():
            due = rate.due()
            while self.sent < due and not self._stop.is_set():
                value = f"{self.name}-{self.sent}".encode()
                try:
                    self.p.produce(self.topic, key=value, value=value, partition=self.sent % self.partitions,
                                   on_delivery=self._on_delivery)
                except BufferError:
                    self.p.poll(0.05)
                    continue
                except KafkaException as e:
                    err = e.args[0]
                    self.history.error(f"{self.name}:produce", err.name(), err.str(), err.retriable(), err.fatal())
                    if err.fatal():
                        return
                    self.p.poll(0.05)
                    continue
                self.sent += 1
                self.history.count_sent(self.name)
            self.p.poll(0.005)

    def stop(self, timeout_s=60):
        """Stops producing and waits (bounded) for every outstanding delivery report."""
        self._stop.set()
        self.thread.join(timeout_s)
        left = self.p.flush(timeout_s)
        if left:
            self.history.error(f"{self.name}:flush", "UNFINISHED", f"{left} records without a delivery report "
                               f"after {timeout_s}s", retriable=False)


class KafkaPythonProducer:
    def __init__(self, history, bootstrap, topic, partitions, rate, name="kafkapython", idempotent=True, **conf):
        from kafka import KafkaProducer

        self.history, self.topic, self.partitions, self.rate, self.name = history, topic, partitions, rate, name
        if idempotent:
            history.idempotent.add(name)
        kwargs = dict(
            bootstrap_servers=bootstrap.split(","),
            client_id=name,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=5,
            request_timeout_ms=10000,
            delivery_timeout_ms=45000,
            metadata_max_age_ms=1000,
        )
        kwargs.update(conf)
        self.p = KafkaProducer(**kwargs)
        self._stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        from kafka.errors import KafkaError as PyKafkaError

        rate = _Rate(self.rate)
        while not self._stop.is_set():
            due = rate.due()
            while self.sent < due and not self._stop.is_set():
                value = f"{self.name}-{self.sent}"
                raw = value.encode()
                try:
                    fut = self.p.send(self.topic, key=raw, value=raw, partition=self.sent % self.partitions)
                except PyKafkaError as e:
                    self.history.error(f"{self.name}:send", type(e).__name__, str(e), getattr(e, "retriable", False))
                    time.sleep(0.05)
                    continue
                fut.add_callback(self._acked, value)
                fut.add_errback(self._failed, value)
                self.sent += 1
                self.history.count_sent(self.name)
            time.sleep(0.005)

    def _acked(self, value, md):
        self.history.ack(self.name, md.partition, md.offset, value)

    def _failed(self, value, exc):
        self.history.error(f"{self.name}:delivery", type(exc).__name__, f"{value}: {exc}", getattr(exc, "retriable", False))

    def stop(self, timeout_s=60):
        self._stop.set()
        self.thread.join(timeout_s)
        try:
            self.p.flush(timeout=timeout_s)
        except Exception as e:  # kafka-python raises KafkaTimeoutError when the flush times out
            self.history.error(f"{self.name}:flush", type(e).__name__, str(e), retriable=False)
        self.p.close(timeout=10)


class JavaProducer:
    """`java StromClientTool load`: the Java client's idempotent producer in its own process."""

    def __init__(self, history, bootstrap, topic, partitions, rate, name="java", **conf):
        self.history, self.name = history, name
        history.idempotent.add(name)
        classes, libs = TOOLS / "java-classes", TOOLS / "java-libs"
        if not (classes / "StromClientTool.class").is_file():
            raise AssertionError("Java helper not compiled: run scripts/setup-clients")
        cmd = [shutil.which("java") or "java", "-XX:TieredStopAtLevel=1", "-cp", f"{classes}{os.pathsep}{libs}/*",
               "StromClientTool", "load", bootstrap, topic, str(partitions), str(rate), name]
        cmd += [f"{k}={v}" for k, v in conf.items()]
        self.stderr_path = TOOLS / "logs" / f"java-load-{name}-{uuid.uuid4().hex[:8]}.err"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")
        self.cmd = cmd
        self.done = None
        self.proc = None
        self.thread = threading.Thread(target=self._read, name=name, daemon=True)

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                self.history.error(f"{self.name}:output", "GARBAGE", line[:200].decode(errors="replace"))
                continue
            if "ack" in ev:
                p, o, v = ev["ack"]
                self.history.ack(self.name, p, o, v)
            elif "error" in ev:
                self.history.error(f"{self.name}:delivery", ev["name"], f"{ev['error']}: {ev['message']}",
                                   ev["retriable"])
            elif "done" in ev:
                self.done = ev["done"]
                self.history.count_sent(self.name, ev["done"]["sent"])

    def stop(self, timeout_s=60):
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.thread.join(10)
        self._stderr.close()
        if self.done is None:
            tail = self.stderr_path.read_text(errors="replace")[-1500:]
            self.history.error(f"{self.name}:exit", "NO_DONE", f"exited {self.proc.returncode}; stderr: {tail}")
        else:
            self.stderr_path.unlink(missing_ok=True)


class ConfluentPolling:
    """A confluent-kafka consumer `self.c` polled on its own thread until stopped, every
    batch recorded in `self.history` under `polled_as()`; subclasses make `c`, `_stop` and
    `thread`."""

    batch = 1000

    def polled_as(self):
        return self.name

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                out = []
                for m in self.c.consume(num_messages=self.batch, timeout=0.2):
                    if m.error():
                        err = m.error()
                        self.history.error(f"{self.name}:poll", err.name(), err.str(), err.retriable(), err.fatal())
                        continue
                    out.append((m.partition(), m.offset(), m.value().decode()))
                if out:
                    self.history.poll(self.polled_as(), out)
        finally:
            self.c.close()

    def stop(self, timeout_s=30):
        self._stop.set()
        self.thread.join(timeout_s)


class ConfluentObserver(ConfluentPolling):
    """Polls every partition from the beginning, throughout the run, never seeking."""

    def __init__(self, history, bootstrap, topic, partitions, name="observer-confluent"):
        self.history, self.name = history, name
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"observer-{uuid.uuid4().hex[:8]}",
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
            "socket.timeout.ms": 10000,
            "log_level": 3,
            "error_cb": lambda err: history.error(f"{name}:client", err.name(), err.str(),
                                                  err.retriable() or err.code() in CONNECTION_EVENTS, err.fatal()),
        })
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)



class KafkaPythonObserver:
    def __init__(self, history, bootstrap, topic, partitions, name="observer-kafkapython"):
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition as KTP

        self.history, self.name = history, name
        self.c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id=name, enable_auto_commit=False,
                               auto_offset_reset="earliest", metadata_max_age_ms=1000, request_timeout_ms=15000)
        tps = [KTP(topic, p) for p in range(partitions)]
        self.c.assign(tps)
        self.c.seek_to_beginning(*tps)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    batches = self.c.poll(timeout_ms=200, max_records=1000)
                except Exception as e:  # noqa: BLE001 -- every client error is recorded
                    self.history.error(f"{self.name}:poll", type(e).__name__, str(e), getattr(e, "retriable", False))
                    time.sleep(0.2)
                    continue
                out = [(tp.partition, r.offset, r.value.decode()) for tp, recs in batches.items() for r in recs]
                if out:
                    self.history.poll(self.name, out)
        finally:
            self.c.close()

    def stop(self, timeout_s=30):
        self._stop.set()
        self.thread.join(timeout_s)


def final_read(history, bootstrap, topic, partitions, timeout_s=90):
    """A fresh consumer reads every partition from its beginning to the end offset the
    leader reports now; fills history.final (and marks it incomplete if it could not)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"final-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 0,
    })
    deadline = time.monotonic() + timeout_s
    try:
        ends = {}
        for p in range(partitions):
            while True:
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    ends[p] = high
                    break
                except KafkaException as e:
                    if time.monotonic() > deadline:
                        history.final_complete = False
                        history.final_note = f"no end offset for partition {p}: {e}"
                        return
                    time.sleep(0.5)
        todo = {p for p, high in ends.items() if high > 0}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        got = []
        last = {}
        while todo and time.monotonic() < deadline:
            for m in c.consume(num_messages=5000, timeout=0.5):
                if m.error():
                    continue
                p, o = m.partition(), m.offset()
                got.append((p, o, m.value().decode()))
                last[p] = o
                if o + 1 >= ends[p]:
                    todo.discard(p)
        history.final = got
        history.note(f"final read: {len(got)} records, end offsets {dict(sorted(ends.items()))}")
        if todo:
            history.final_complete = False
            history.final_note = (f"partitions {sorted(todo)} not read to their end offsets in {timeout_s}s: "
                                  f"read to { {p: last.get(p) for p in todo} }, ends { {p: ends[p] for p in todo} }")
    finally:
        c.close()
