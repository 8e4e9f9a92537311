// Consumer-group tooling through the Java Admin client, for the group tests. Several
// operations, separated by "--", run in order in one process (a JVM start costs seconds);
// stdout is {"results":[one JSON object per operation]}. An operation that fails gives
// {"error":"<Kafka exception class>","message":..}, so a test can check the broker's error.
//
//   java GroupAdmin BOOTSTRAP list [STATE...]         {"groups":[{"group_id","state","type"}]}
//   java GroupAdmin BOOTSTRAP describe GROUP          {"group_id","state","type","assignor",
//                                                      "members":[{"member_id","client_id",
//                                                      "host","instance_id","partitions":[[t,p]]}]}
//   java GroupAdmin BOOTSTRAP lag GROUP               {"partitions":[[t,p,committed,end]]}
//   java GroupAdmin BOOTSTRAP delete GROUP            {"deleted":GROUP}
//   java GroupAdmin BOOTSTRAP delete-offsets GROUP TOPIC P...   {"deleted":[[t,p]]}
//   java GroupAdmin BOOTSTRAP streams-list [STATE...] {"groups":[{"group_id","state","type"}]}
//   java GroupAdmin BOOTSTRAP streams-describe GROUP  {"group_id","state","group_epoch",
//                                                      "assignment_epoch","topology_epoch",
//                                                      "subtopologies":[{"id","source_topics"}],
//                                                      "members":[{"member_id","process_id",
//                                                      "member_epoch","active":[[s,p]],"standby":[[s,p]]}]}
//   java GroupAdmin BOOTSTRAP streams-delete GROUP    {"deleted":GROUP}

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.admin.StreamsGroupSubtopologyDescription;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;

public final class GroupAdmin {
    private static final long CALL_TIMEOUT_S = 30;

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
        }
        System.out.println("{\"results\":[" + String.join(",", outs) + "]}");
        System.out.flush();
        System.exit(0);
    }

    private static String runOne(Admin admin, String[] op) throws Exception {
        try {
            return run(admin, op);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            return "{\"error\":" + quote(cause.getClass().getSimpleName()) + ",\"message\":"
                + quote(String.valueOf(cause.getMessage())) + "}";
        }
    }

    private static String run(Admin admin, String[] args) throws Exception {
        switch (args[1]) {
            case "list": return list(admin, args);
            case "describe": return describe(admin, args[2]);
            case "lag": return lag(admin, args[2]);
            case "delete":
                admin.deleteConsumerGroups(List.of(args[2])).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                return "{\"deleted\":" + quote(args[2]) + "}";
            case "delete-offsets": return deleteOffsets(admin, args);
            case "streams-list": return streamsList(admin, args);
            case "streams-describe": return streamsDescribe(admin, args[2]);
            case "streams-delete":
                admin.deleteStreamsGroups(List.of(args[2])).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                return "{\"deleted\":" + quote(args[2]) + "}";
            default: throw new IllegalArgumentException("unknown op " + args[1]);
        }
    }

    private static String list(Admin admin, String[] args) throws Exception {
        ListGroupsOptions options = ListGroupsOptions.forConsumerGroups();
        if (args.length > 2) {
            Set<GroupState> states = new HashSet<>();
            for (int i = 2; i < args.length; i++) {
                states.add(GroupState.parse(args[i]));
            }
            options = options.inGroupStates(states);
        }
        List<String> groups = new ArrayList<>();
        for (GroupListing g : admin.listGroups(options).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)) {
            groups.add("{\"group_id\":" + quote(g.groupId()) + ",\"state\":"
                + quote(g.groupState().map(Object::toString).orElse("")) + ",\"type\":"
                + quote(g.type().map(Object::toString).orElse("")) + ",\"protocol\":" + quote(g.protocol()) + "}");
        }
        return "{\"groups\":[" + String.join(",", groups) + "]}";
    }

    private static String describe(Admin admin, String group) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
            .get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        List<String> members = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            List<String> parts = new ArrayList<>();
            for (TopicPartition tp : m.assignment().topicPartitions()) {
                parts.add("[" + quote(tp.topic()) + "," + tp.partition() + "]");
            }
            members.add("{\"member_id\":" + quote(m.consumerId()) + ",\"client_id\":" + quote(m.clientId())
                + ",\"host\":" + quote(m.host()) + ",\"instance_id\":" + quote(m.groupInstanceId().orElse(""))
                + ",\"partitions\":[" + String.join(",", parts) + "]}");
        }
        return "{\"group_id\":" + quote(d.groupId()) + ",\"state\":" + quote(d.groupState().toString())
            + ",\"type\":" + quote(d.type().toString()) + ",\"assignor\":" + quote(d.partitionAssignor())
            + ",\"coordinator\":" + (d.coordinator() == null ? -1 : d.coordinator().id())
            + ",\"members\":[" + String.join(",", members) + "]}";
    }

    private static String streamsList(Admin admin, String[] args) throws Exception {
        ListGroupsOptions options = new ListGroupsOptions().withTypes(Set.of(GroupType.STREAMS));
        if (args.length > 2) {
            Set<GroupState> states = new HashSet<>();
            for (int i = 2; i < args.length; i++) {
                states.add(GroupState.parse(args[i]));
            }
            options = options.inGroupStates(states);
        }
        List<String> groups = new ArrayList<>();
        for (GroupListing g : admin.listGroups(options).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)) {
            groups.add("{\"group_id\":" + quote(g.groupId()) + ",\"state\":"
                + quote(g.groupState().map(Object::toString).orElse("")) + ",\"type\":"
                + quote(g.type().map(Object::toString).orElse("")) + "}");
        }
        return "{\"groups\":[" + String.join(",", groups) + "]}";
    }

    private static String tasks(List<StreamsGroupMemberAssignment.TaskIds> tasks) {
        List<String> out = new ArrayList<>();
        for (StreamsGroupMemberAssignment.TaskIds t : tasks) {
            for (Integer p : t.partitions()) {
                out.add("[" + quote(t.subtopologyId()) + "," + p + "]");
            }
        }
        return "[" + String.join(",", out) + "]";
    }

    private static String streamsDescribe(Admin admin, String group) throws Exception {
        StreamsGroupDescription d = admin.describeStreamsGroups(List.of(group)).describedGroups().get(group)
            .get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        List<String> subs = new ArrayList<>();
        for (StreamsGroupSubtopologyDescription s : d.subtopologies()) {
            List<String> sources = new ArrayList<>();
            for (String t : s.sourceTopics()) {
                sources.add(quote(t));
            }
            subs.add("{\"id\":" + quote(s.subtopologyId()) + ",\"source_topics\":[" + String.join(",", sources) + "]}");
        }
        List<String> members = new ArrayList<>();
        for (StreamsGroupMemberDescription m : d.members()) {
            members.add("{\"member_id\":" + quote(m.memberId()) + ",\"process_id\":" + quote(m.processId())
                + ",\"member_epoch\":" + m.memberEpoch()
                + ",\"active\":" + tasks(m.assignment().activeTasks())
                + ",\"standby\":" + tasks(m.assignment().standbyTasks()) + "}");
        }
        return "{\"group_id\":" + quote(d.groupId()) + ",\"state\":" + quote(d.groupState().toString())
            + ",\"group_epoch\":" + d.groupEpoch() + ",\"assignment_epoch\":" + d.targetAssignmentEpoch()
            + ",\"topology_epoch\":" + d.topologyEpoch()
            + ",\"subtopologies\":[" + String.join(",", subs) + "]"
            + ",\"members\":[" + String.join(",", members) + "]}";
    }

    private static String lag(Admin admin, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
            .partitionsToOffsetAndMetadata().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (TopicPartition tp : committed.keySet()) {
            latest.put(tp, OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends = admin.listOffsets(latest).all()
            .get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        List<String> rows = new ArrayList<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : committed.entrySet()) {
            TopicPartition tp = e.getKey();
            long offset = e.getValue() == null ? -1 : e.getValue().offset();
            rows.add("[" + quote(tp.topic()) + "," + tp.partition() + "," + offset + "," + ends.get(tp).offset() + "]");
        }
        return "{\"partitions\":[" + String.join(",", rows) + "]}";
    }

    private static String deleteOffsets(Admin admin, String[] args) throws Exception {
        Set<TopicPartition> parts = new HashSet<>();
        for (int i = 4; i < args.length; i++) {
            parts.add(new TopicPartition(args[3], Integer.parseInt(args[i])));
        }
        admin.deleteConsumerGroupOffsets(args[2], parts).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        List<String> out = new ArrayList<>();
        for (TopicPartition tp : parts) {
            out.add("[" + quote(tp.topic()) + "," + tp.partition() + "]");
        }
        return "{\"deleted\":[" + String.join(",", out) + "]}";
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
}
