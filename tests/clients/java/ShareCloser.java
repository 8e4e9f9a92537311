// Times KafkaShareConsumer.close() (the Java client's KIP-932 consumer), for
// tests/clients/test_share_groups.py:
//
//   java ShareCloser bootstrap group topic mode want idle_ms max_s
//
// Subscribes and polls until it has received `want` records or max_s seconds passed (in
// explicit mode: until the first poll with records, as a poll with records unacknowledged
// throws), then
// leaves the records' acknowledgements as `mode` says and closes, timing close():
//   commit    implicit acknowledgement; commitSync() acknowledges the records, then close()
//   implicit  implicit acknowledgement; close() itself sends the acknowledgements
//   explicit  explicit acknowledgement; no record acknowledged, close() must release them
// Prints one JSON line: {"records":[offset,..],"close_ms":N}

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareCloser {
    public static void main(String[] args) {
        String bootstrap = args[0], group = args[1], topic = args[2], mode = args[3];
        int want = Integer.parseInt(args[4]);
        long idleMs = Long.parseLong(args[5]);
        long maxMs = Long.parseLong(args[6]) * 1000;
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("share.acknowledgement.mode", mode.equals("explicit") ? "explicit" : "implicit");
        List<Long> got = new ArrayList<>();
        long start = System.currentTimeMillis();
        KafkaShareConsumer<byte[], byte[]> consumer =
                new KafkaShareConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        consumer.subscribe(List.of(topic));
        boolean explicit = mode.equals("explicit");
        while (got.size() < want && System.currentTimeMillis() - start < maxMs) {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                got.add(r.offset());
            }
            if (explicit && !got.isEmpty()) {
                break;
            }
        }
        // Polls on with nothing to receive for idle_ms (not in explicit mode), as a consumer
        // that waits for more does: its ShareFetch requests then wait on the broker.
        long idleStart = System.currentTimeMillis();
        while (!explicit && System.currentTimeMillis() - idleStart < idleMs) {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                got.add(r.offset());
            }
        }
        if (mode.equals("commit")) {
            consumer.commitSync();
        }
        long before = System.nanoTime();
        consumer.close();
        long closeMs = (System.nanoTime() - before) / 1_000_000;
        StringBuilder out = new StringBuilder("{\"records\":[");
        for (int i = 0; i < got.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append(got.get(i));
        }
        System.out.println(out.append("],\"close_ms\":").append(closeMs).append('}'));
    }
}
