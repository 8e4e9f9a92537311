// A long-running consumer-group member with the Java client, driven over stdin/stdout by the
// group tests (tests/clients/group_members.py); same protocol as group_member.py:
//
//   java GroupMember key=value...
//   options: bootstrap, topic, group, client_id, session_timeout_ms, heartbeat_interval_ms,
//            assignor (range | roundrobin | cooperative-sticky; with protocol=consumer the
//            server-side assignor: uniform | range), instance_id, protocol (classic |
//            consumer), commit_on_revoke (1: commit synchronously what was received from
//            partitions about to be revoked, also on close), max_s (exit after this many
//            seconds whatever happens)
//   stdout:  {"ev":"assigned"|"revoked"|"lost","partitions":[..],"assignment":[..]}
//            {"ev":"records","records":[[partition,offset,"key"],..]}
//            {"ev":"committed","offsets":[[partition,next_offset],..]}
//            {"ev":"status","assignment":[..],"generation":G,"member_id":"..."}
//            {"ev":"error","message":"..."}  {"ev":"closed"}
//   stdin:   commit | status | close

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.LinkedBlockingQueue;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class GroupMember {
    private static final Duration POLL = Duration.ofMillis(100);
    private static final TreeSet<Integer> owned = new TreeSet<>();

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        for (String a : args) {
            int eq = a.indexOf('=');
            opts.put(a.substring(0, eq), a.substring(eq + 1));
        }
        long deadline = System.nanoTime() + (long) (Double.parseDouble(opts.getOrDefault("max_s", "170")) * 1e9);
        LinkedBlockingQueue<String> commands = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    commands.add(line.trim());
                }
            } catch (Exception e) {
                // stdin gone: close as below
            }
            commands.add("close");
        });
        reader.setDaemon(true);
        reader.start();

        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(config(opts));
        boolean commitOnRevoke = "1".equals(opts.get("commit_on_revoke"));
        c.subscribe(List.of(opts.get("topic")), new ConsumerRebalanceListener() {
            @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                if (commitOnRevoke && !parts.isEmpty()) {
                    commit(c, parts);
                }
                change("revoked", parts, false);
            }
            @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) { change("assigned", parts, true); }
            @Override public void onPartitionsLost(Collection<TopicPartition> parts) { change("lost", parts, false); }
        });
        while (System.nanoTime() < deadline) {
            try {
                ConsumerRecords<byte[], byte[]> recs = c.poll(POLL);
                if (!recs.isEmpty()) {
                    List<String> out = new ArrayList<>();
                    for (ConsumerRecord<byte[], byte[]> r : recs) {
                        String key = r.key() == null ? "" : new String(r.key(), StandardCharsets.UTF_8);
                        out.add("[" + r.partition() + "," + r.offset() + "," + quote(key) + "]");
                    }
                    emit("{\"ev\":\"records\",\"records\":[" + String.join(",", out) + "]}");
                }
            } catch (Exception e) {
                emit("{\"ev\":\"error\",\"message\":" + quote("poll: " + e) + "}");
                Thread.sleep(100);
            }
            String cmd;
            while ((cmd = commands.poll()) != null) {
                if (cmd.equals("commit")) {
                    commit(c, c.assignment());
                } else if (cmd.equals("status")) {
                    ConsumerGroupMetadata md = c.groupMetadata();
                    emit("{\"ev\":\"status\",\"assignment\":" + ints(owned) + ",\"generation\":" + md.generationId()
                        + ",\"member_id\":" + quote(md.memberId()) + "}");
                } else if (cmd.equals("close")) {
                    c.close(Duration.ofSeconds(10));
                    emit("{\"ev\":\"closed\"}");
                    System.exit(0);
                }
            }
        }
        c.close(Duration.ofSeconds(10));
        emit("{\"ev\":\"closed\"}");
        System.exit(0);
    }

    private static Properties config(Map<String, String> opts) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("bootstrap"));
        p.put(ConsumerConfig.GROUP_ID_CONFIG, opts.get("group"));
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, opts.getOrDefault("client_id", "java-member"));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "1000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        String protocol = opts.getOrDefault("protocol", "classic");
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("consumer")) {
            // Session timeout, heartbeat interval and assignment are the broker's in KIP-848.
            if (opts.containsKey("assignor")) {
                p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, opts.get("assignor"));
            }
        } else {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, opts.getOrDefault("session_timeout_ms", "6000"));
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, opts.getOrDefault("heartbeat_interval_ms", "500"));
            String assignor = opts.getOrDefault("assignor", "range");
            String cls = assignor.equals("cooperative-sticky")
                ? "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
                : assignor.equals("roundrobin")
                    ? "org.apache.kafka.clients.consumer.RoundRobinAssignor"
                    : "org.apache.kafka.clients.consumer.RangeAssignor";
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, cls);
        }
        if (opts.containsKey("instance_id")) {
            p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, opts.get("instance_id"));
        }
        return p;
    }

    private static void commit(KafkaConsumer<byte[], byte[]> c, Collection<TopicPartition> parts) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : parts) {
            offsets.put(tp, new OffsetAndMetadata(c.position(tp, Duration.ofSeconds(10))));
        }
        try {
            c.commitSync(offsets, Duration.ofSeconds(15));
        } catch (Exception e) {
            emit("{\"ev\":\"error\",\"message\":" + quote("commit: " + e) + "}");
            return;
        }
        List<String> out = new ArrayList<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            out.add("[" + e.getKey().partition() + "," + e.getValue().offset() + "]");
        }
        emit("{\"ev\":\"committed\",\"offsets\":[" + String.join(",", out) + "]}");
    }

    private static void change(String ev, Collection<TopicPartition> parts, boolean add) {
        TreeSet<Integer> ps = new TreeSet<>();
        for (TopicPartition tp : parts) {
            ps.add(tp.partition());
        }
        if (add) {
            owned.addAll(ps);
        } else {
            owned.removeAll(ps);
        }
        emit("{\"ev\":\"" + ev + "\",\"partitions\":" + ints(ps) + ",\"assignment\":" + ints(owned) + "}");
    }

    private static String ints(Collection<Integer> xs) {
        List<String> s = new ArrayList<>();
        for (Integer x : xs) {
            s.add(x.toString());
        }
        return "[" + String.join(",", s) + "]";
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') {
                b.append('\\').append(ch);
            } else if (ch < 0x20) {
                b.append(String.format("\\u%04x", (int) ch));
            } else {
                b.append(ch);
            }
        }
        return b.append('"').toString();
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
