// Share groups (KIP-932) through the Java client: KafkaShareConsumer and the Admin client's
// share group calls (what kafka-share-groups.sh does). Several operations, separated by
// "--", run in order in one process; stdout is {"results":[one JSON object per operation]}.
// An operation that fails gives {"error":"<Kafka exception class>","message":..}.
//
//   java ShareTool BOOTSTRAP join GROUP TOPIC POLL_MS   a share consumer subscribes and polls
//                                                       for POLL_MS, stays in the group
//                                                       {"joined":GROUP,"poll_errors":[..]}
//   java ShareTool BOOTSTRAP describe GROUP             {"group_id","state","assignor",
//                                                        "members":[{"member_id","client_id",
//                                                        "host","partitions":[[t,p]]}]}
//   java ShareTool BOOTSTRAP list                       {"groups":[{"group_id","state","type"}]}
//   java ShareTool BOOTSTRAP leave                      closes the consumers started by join
//   java ShareTool BOOTSTRAP delete GROUP               {"deleted":GROUP}
//   java ShareTool BOOTSTRAP config-set GROUP KEY VALUE  incrementalAlterConfigs SET on the
//                                                       GROUP resource {"altered":GROUP}
//   java ShareTool BOOTSTRAP config-delete GROUP KEY    incrementalAlterConfigs DELETE
//   java ShareTool BOOTSTRAP config-describe GROUP      {"configs":{KEY:{"value","source",
//                                                        "read_only"}}}
//   java ShareTool BOOTSTRAP config-list                listConfigResources(GROUP)
//                                                       {"groups":[names]}
//   java ShareTool BOOTSTRAP alter GROUP TOPIC P OFFSET alterShareGroupOffsets of one
//                                                       partition {"altered":GROUP}
//   java ShareTool BOOTSTRAP delete-offsets GROUP TOPIC deleteShareGroupOffsets of a topic
//                                                       {"deleted_offsets":TOPIC}
//   java ShareTool BOOTSTRAP offsets GROUP              listShareGroupOffsets of every
//                                                       partition with state
//                                                       {"offsets":[[t,p,start,epoch]]}

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class ShareTool {
    private static final long CALL_TIMEOUT_S = 30;
    private static final List<KafkaShareConsumer<byte[], byte[]>> CONSUMERS = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        List<String> outs = new ArrayList<>();
        try (Admin admin = Admin.create(props)) {
            int start = 1;
            while (start < args.length) {
                int end = start;
                while (end < args.length && !args[end].equals("--")) {
                    end++;
                }
                String[] op = new String[end - start + 1];
                op[0] = args[0];
                System.arraycopy(args, start, op, 1, end - start);
                outs.add(runOne(admin, op));
                start = end + 1;
            }
        } finally {
            closeConsumers();
        }
        System.out.println("{\"results\":[" + String.join(",", outs) + "]}");
        System.out.flush();
    }

    private static String runOne(Admin admin, String[] op) throws Exception {
        try {
            switch (op[1]) {
                case "join":
                    return join(op[0], op[2], op[3], Long.parseLong(op[4]));
                case "describe":
                    return describe(admin, op[2]);
                case "list":
                    return list(admin);
                case "leave":
                    closeConsumers();
                    return "{\"left\":true}";
                case "delete":
                    admin.deleteShareGroups(List.of(op[2])).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                    return "{\"deleted\":" + q(op[2]) + "}";
                case "config-set":
                    return alterConfig(admin, op[2], new AlterConfigOp(new ConfigEntry(op[3], op[4]), AlterConfigOp.OpType.SET));
                case "config-delete":
                    return alterConfig(admin, op[2], new AlterConfigOp(new ConfigEntry(op[3], null), AlterConfigOp.OpType.DELETE));
                case "config-describe":
                    return describeConfig(admin, op[2]);
                case "config-list":
                    return listConfigResources(admin);
                case "alter":
                    admin.alterShareGroupOffsets(op[2],
                            Map.of(new TopicPartition(op[3], Integer.parseInt(op[4])), Long.parseLong(op[5])))
                        .all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                    return "{\"altered\":" + q(op[2]) + "}";
                case "delete-offsets":
                    admin.deleteShareGroupOffsets(op[2], Set.of(op[3])).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                    return "{\"deleted_offsets\":" + q(op[3]) + "}";
                case "offsets":
                    return offsets(admin, op[2]);
                default:
                    throw new IllegalArgumentException("unknown operation " + op[1]);
            }
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            return "{\"error\":" + q(cause.getClass().getSimpleName()) + ",\"message\":" + q(String.valueOf(cause.getMessage())) + "}";
        }
    }

    private static String join(String bootstrap, String group, String topic, long pollMs) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("client.id", "share-tool");
        KafkaShareConsumer<byte[], byte[]> consumer =
            new KafkaShareConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        CONSUMERS.add(consumer);
        consumer.subscribe(List.of(topic));
        List<String> errors = new ArrayList<>();
        long deadline = System.currentTimeMillis() + pollMs;
        while (System.currentTimeMillis() < deadline) {
            try {
                consumer.poll(Duration.ofMillis(200));
            } catch (RuntimeException e) {
                String name = q(e.getClass().getSimpleName());
                if (!errors.contains(name)) {
                    errors.add(name);
                }
            }
        }
        return "{\"joined\":" + q(group) + ",\"poll_errors\":[" + String.join(",", errors) + "]}";
    }

    private static String describe(Admin admin, String group) throws Exception {
        Map<String, ShareGroupDescription> all =
            admin.describeShareGroups(List.of(group)).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        ShareGroupDescription d = all.get(group);
        List<String> members = new ArrayList<>();
        for (ShareMemberDescription m : d.members()) {
            List<String> parts = new ArrayList<>();
            for (TopicPartition tp : m.assignment().topicPartitions()) {
                parts.add("[" + q(tp.topic()) + "," + tp.partition() + "]");
            }
            members.add("{\"member_id\":" + q(m.consumerId()) + ",\"client_id\":" + q(m.clientId())
                + ",\"host\":" + q(m.host()) + ",\"partitions\":[" + String.join(",", parts) + "]}");
        }
        return "{\"group_id\":" + q(d.groupId()) + ",\"state\":" + q(String.valueOf(d.groupState()))
            + ",\"members\":[" + String.join(",", members) + "]}";
    }

    private static String offsets(Admin admin, String group) throws Exception {
        Map<TopicPartition, SharePartitionOffsetInfo> found = admin
            .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
            .partitionsToOffsetInfo(group).get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        List<String> rows = new ArrayList<>();
        for (Map.Entry<TopicPartition, SharePartitionOffsetInfo> e : found.entrySet()) {
            if (e.getValue() == null) {
                continue;
            }
            rows.add("[" + q(e.getKey().topic()) + "," + e.getKey().partition() + ","
                + e.getValue().startOffset() + "," + e.getValue().leaderEpoch().orElse(-1) + "]");
        }
        rows.sort(null);
        return "{\"offsets\":[" + String.join(",", rows) + "]}";
    }

    private static String list(Admin admin) throws Exception {
        ListGroupsOptions options = new ListGroupsOptions().withTypes(Set.of(GroupType.SHARE));
        List<String> groups = new ArrayList<>();
        for (GroupListing g : admin.listGroups(options).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)) {
            groups.add("{\"group_id\":" + q(g.groupId()) + ",\"state\":" + q(String.valueOf(g.groupState().orElse(null)))
                + ",\"type\":" + q(String.valueOf(g.type().orElse(null))) + "}");
        }
        return "{\"groups\":[" + String.join(",", groups) + "]}";
    }

    private static String alterConfig(Admin admin, String group, AlterConfigOp op) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
        admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        return "{\"altered\":" + q(group) + "}";
    }

    private static String describeConfig(Admin admin, String group) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
        Config config = admin.describeConfigs(List.of(resource)).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(resource);
        List<String> entries = new ArrayList<>();
        for (ConfigEntry e : config.entries()) {
            entries.add(q(e.name()) + ":{\"value\":" + q(e.value()) + ",\"source\":" + q(String.valueOf(e.source()))
                + ",\"read_only\":" + e.isReadOnly() + "}");
        }
        return "{\"configs\":{" + String.join(",", entries) + "}}";
    }

    private static String listConfigResources(Admin admin) throws Exception {
        List<String> names = new ArrayList<>();
        for (ConfigResource r : admin.listConfigResources(Set.of(ConfigResource.Type.GROUP), new ListConfigResourcesOptions())
                .all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)) {
            names.add(q(r.name()));
        }
        return "{\"groups\":[" + String.join(",", names) + "]}";
    }

    private static void closeConsumers() {
        for (KafkaShareConsumer<byte[], byte[]> c : CONSUMERS) {
            try {
                c.close(Duration.ofSeconds(10));
            } catch (RuntimeException e) {
                // Closing is best effort: the test checks the group, not the close.
            }
        }
        CONSUMERS.clear();
    }

    private static String q(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
