// A share-group member with the Java client's KafkaShareConsumer (KIP-932), for
// tests/clients/test_share_groups.py:
//
//   java ShareMember bootstrap group topic idle_ms max_s [stdin]
//
// Subscribes, polls in implicit acknowledgement mode (each poll accepts the previous one's
// records), and stops once it has received something and then nothing for idle_ms, or after
// max_s seconds; closes (which sends the last acknowledgements) and prints one JSON line:
//   {"records":[[offset,delivery_count],..]}
// With `stdin`, it also prints each poll's records as they come, {"polled":[[offset,
// delivery_count],..]}, and stops as well once its stdin is closed: the caller, which sees
// what every member got, ends a member that has nothing more to get.

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareMember {
    public static void main(String[] args) {
        String bootstrap = args[0], group = args[1], topic = args[2];
        long idleMs = Long.parseLong(args[3]);
        long maxMs = Long.parseLong(args[4]) * 1000;
        boolean watchStdin = args.length > 5 && args[5].equals("stdin");
        AtomicBoolean stdinClosed = new AtomicBoolean(false);
        if (watchStdin) {
            Thread reader = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // Nothing is sent; only the end of the input counts.
                    }
                } catch (IOException e) {
                    // A broken stdin ends the member as a closed one does.
                }
                stdinClosed.set(true);
            });
            reader.setDaemon(true);
            reader.start();
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        List<long[]> got = new ArrayList<>();
        long start = System.currentTimeMillis();
        long lastRecord = -1;
        try (KafkaShareConsumer<byte[], byte[]> consumer =
                new KafkaShareConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            while (System.currentTimeMillis() - start < maxMs && !stdinClosed.get()) {
                boolean any = false;
                List<long[]> polled = new ArrayList<>();
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    short count = r.deliveryCount().orElse((short) -1);
                    polled.add(new long[] {r.offset(), count});
                    any = true;
                }
                got.addAll(polled);
                if (watchStdin && any) {
                    System.out.println(json("polled", polled));
                    System.out.flush();
                }
                long now = System.currentTimeMillis();
                if (any) {
                    lastRecord = now;
                } else if (lastRecord >= 0 && now - lastRecord >= idleMs) {
                    break;
                }
            }
            consumer.commitSync();
        }
        System.out.println(json("records", got));
    }

    /** {"key":[[offset,delivery_count],..]} */
    static String json(String key, List<long[]> records) {
        StringBuilder out = new StringBuilder("{\"").append(key).append("\":[");
        for (int i = 0; i < records.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append('[').append(records.get(i)[0]).append(',').append(records.get(i)[1]).append(']');
        }
        return out.append("]}").toString();
    }
}
