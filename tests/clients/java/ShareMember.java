// A share-group member with the Java client's KafkaShareConsumer (KIP-932), for
// tests/clients/test_share_groups.py:
//
//   java ShareMember bootstrap group topic idle_ms max_s
//
// Subscribes, polls in implicit acknowledgement mode (each poll accepts the previous one's
// records), and stops once it has received something and then nothing for idle_ms, or after
// max_s seconds; closes (which sends the last acknowledgements) and prints one JSON line:
//   {"records":[[offset,delivery_count],..]}

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareMember {
    public static void main(String[] args) {
        String bootstrap = args[0], group = args[1], topic = args[2];
        long idleMs = Long.parseLong(args[3]);
        long maxMs = Long.parseLong(args[4]) * 1000;
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        List<long[]> got = new ArrayList<>();
        long start = System.currentTimeMillis();
        long lastRecord = -1;
        try (KafkaShareConsumer<byte[], byte[]> consumer =
                new KafkaShareConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            while (System.currentTimeMillis() - start < maxMs) {
                boolean any = false;
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    short count = r.deliveryCount().orElse((short) -1);
                    got.add(new long[] {r.offset(), count});
                    any = true;
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
        StringBuilder out = new StringBuilder("{\"records\":[");
        for (int i = 0; i < got.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append('[').append(got.get(i)[0]).append(',').append(got.get(i)[1]).append(']');
        }
        System.out.println(out.append("]}"));
    }
}
