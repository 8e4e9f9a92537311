"""A consume-transform-produce copier for test_transactions.py's kill-and-restart test, run
as its own process so the test can `kill -9` it: librdkafka's read_committed consumer
(partitions assigned, offsets from the group) and transactional producer copy records from
IN to OUT, a few per transaction, committing the input offsets with
send_offsets_to_transaction. Each start's init_transactions fences (and aborts) a killed
predecessor. Prints one line per committed transaction and exits 0 once every partition's
committed position is at its end; exits 2 if that does not happen within the deadline.

Usage: eos_copier.py BOOTSTRAP TXID GROUP IN OUT PARTITIONS DEADLINE_S"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

TIMEOUT_S = 30
PER_TRANSACTION = 3


def main():
    bootstrap, txid, group, src, dst, partitions, deadline_s = sys.argv[1:8]
    partitions, deadline = int(partitions), time.monotonic() + float(deadline_s)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid, "linger.ms": 1})
    producer.init_transactions(TIMEOUT_S)
    tps = [TopicPartition(src, p) for p in range(partitions)]
    consumer.assign(tps)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(src, p), timeout=TIMEOUT_S)[1]
            for p in range(partitions)}
    while time.monotonic() < deadline:
        positions = {tp.partition: tp.offset for tp in consumer.position(tps)}
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=TIMEOUT_S)}
        if all(committed[p] >= ends[p] for p in ends):
            print("done", flush=True)
            return 0
        messages = [m for m in consumer.consume(PER_TRANSACTION, 0.5) if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        next_offsets = {}
        for m in messages:
            producer.produce(dst, value=m.value(), partition=m.partition() % partitions)
            next_offsets[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(src, p, o) for p, o in next_offsets.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S)
        print("committed", len(messages), positions, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
