// The Java Admin's ACL calls, as kafka-acls.sh makes them, for the ACL tests
// (tests/clients/test_acls.py). One JSON line on stdout.
//
// An ACL or filter is one argument: RESOURCE_TYPE|PATTERN_TYPE|NAME|PRINCIPAL|HOST|OPERATION|PERMISSION
// with Kafka's enum names; in a filter, "-" for NAME, PRINCIPAL or HOST means any (null).
//
//   create BOOTSTRAP [CLIENT_PROPS] ACL...     createAcls: {"results": [null | "ErrorClass: message", ...]}
//   describe BOOTSTRAP [CLIENT_PROPS] FILTER   describeAcls: {"acls": [ACL, ...]} (sorted) or {"error": ...}
//   delete BOOTSTRAP [CLIENT_PROPS] FILTER...  deleteAcls: {"deleted": [[ACL, ...] | "error", ...]}
//
//   quota-alter BOOTSTRAP [CLIENT_PROPS] ENTITY OP...   alterClientQuotas of one entity:
//                                        ENTITY is type=name,type=name ("name" "-" is the default),
//                                        OP is key=value or key=- (remove): {"result": null | "Error: message"}
//   quota-describe BOOTSTRAP [CLIENT_PROPS]   describeClientQuotas of everything:
//                                        {"quotas": {"type=name,...": {key: value}}} or {"error": ...}
//
//   create-topics BOOTSTRAP [CLIENT_PROPS] PREFIX COUNT PARTITIONS RETRY   createTopics of COUNT topics
//                                        PREFIX-0.. with PARTITIONS each in one call, retryOnQuotaViolation
//                                        RETRY (true|false): {"ms": elapsed, "errors": {topic: null | "ErrorClass"}}
//
//   broker-config-set BOOTSTRAP [CLIENT_PROPS] BROKER KEY VALUE   incrementalAlterConfigs SET of one key on
//                                        broker BROKER ("" is the cluster default, as kafka-configs.sh
//                                        --entity-default): {"result": null | "ErrorClass: message"}
//   broker-config-describe BOOTSTRAP [CLIENT_PROPS] BROKER   describeConfigs of broker BROKER with
//                                        synonyms: {"configs": {key: {"value", "sensitive", "type",
//                                        "source", "synonyms": [{"name", "value", "source"}, ...]}}}
//
// CLIENT_PROPS is "-" or k=v pairs separated by ';' (security settings for SASL tests).

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateAclsResult;
import org.apache.kafka.clients.admin.DeleteAclsResult;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

public class AclTool {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        if (!args[2].equals("-")) {
            // `key=value;key=value`; a sasl.jaas.config value (itself ending in ';') runs to
            // the end of the text, so it must come last.
            String rest = args[2];
            while (!rest.isEmpty()) {
                int eq = rest.indexOf('=');
                String key = rest.substring(0, eq);
                int end = key.equals("sasl.jaas.config") ? rest.length() : rest.indexOf(';', eq);
                if (end < 0) end = rest.length();
                props.put(key, rest.substring(eq + 1, end));
                rest = end >= rest.length() ? "" : rest.substring(end + 1);
            }
        }
        String out;
        try (Admin admin = Admin.create(props)) {
            switch (args[0]) {
                case "create": out = create(admin, args); break;
                case "describe": out = describe(admin, args[3]); break;
                case "delete": out = delete(admin, args); break;
                case "quota-alter": out = quotaAlter(admin, args); break;
                case "quota-describe": out = quotaDescribe(admin); break;
                case "create-topics": out = createTopics(admin, args); break;
                case "broker-config-set": out = brokerConfigSet(admin, args); break;
                case "broker-config-describe": out = brokerConfigDescribe(admin, args); break;
                default: throw new IllegalArgumentException("unknown command " + args[0]);
            }
        }
        System.out.println(out);
        System.out.flush();
        System.exit(0);
    }

    private static String create(Admin admin, String[] args) throws Exception {
        List<AclBinding> acls = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            String[] f = args[i].split("\\|", -1);
            acls.add(new AclBinding(
                new ResourcePattern(ResourceType.fromString(f[0]), f[2], PatternType.fromString(f[1])),
                new AccessControlEntry(f[3], f[4], AclOperation.fromString(f[5]), AclPermissionType.fromString(f[6]))));
        }
        CreateAclsResult result = admin.createAcls(acls);
        List<String> outcomes = new ArrayList<>();
        for (AclBinding acl : acls) {
            outcomes.add(outcome(result.values().get(acl)));
        }
        return "{\"results\":[" + String.join(",", outcomes) + "]}";
    }

    private static String describe(Admin admin, String filter) throws Exception {
        try {
            Collection<AclBinding> acls = admin.describeAcls(filter(filter)).values().get(60, TimeUnit.SECONDS);
            List<String> lines = new ArrayList<>();
            for (AclBinding acl : acls) {
                lines.add(quote(text(acl)));
            }
            Collections.sort(lines);
            return "{\"acls\":[" + String.join(",", lines) + "]}";
        } catch (ExecutionException e) {
            return "{\"error\":" + quote(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage()) + "}";
        }
    }

    private static String delete(Admin admin, String[] args) throws Exception {
        List<AclBindingFilter> filters = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            filters.add(filter(args[i]));
        }
        DeleteAclsResult result = admin.deleteAcls(filters);
        List<String> outcomes = new ArrayList<>();
        for (AclBindingFilter filter : filters) {
            try {
                DeleteAclsResult.FilterResults results = result.values().get(filter).get(60, TimeUnit.SECONDS);
                List<String> lines = new ArrayList<>();
                for (DeleteAclsResult.FilterResult r : results.values()) {
                    lines.add(r.exception() == null ? quote(text(r.binding())) : quote("error " + r.exception()));
                }
                Collections.sort(lines);
                outcomes.add("[" + String.join(",", lines) + "]");
            } catch (ExecutionException e) {
                outcomes.add(quote(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage()));
            }
        }
        return "{\"deleted\":[" + String.join(",", outcomes) + "]}";
    }

    private static String quotaAlter(Admin admin, String[] args) throws Exception {
        Map<String, String> entity = new java.util.HashMap<>();
        for (String part : args[3].split(",")) {
            String[] kv = part.split("=", 2);
            entity.put(kv[0], kv[1].equals("-") ? null : kv[1]);
        }
        List<org.apache.kafka.common.quota.ClientQuotaAlteration.Op> ops = new ArrayList<>();
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            ops.add(new org.apache.kafka.common.quota.ClientQuotaAlteration.Op(kv[0], kv[1].equals("-") ? null : Double.valueOf(kv[1])));
        }
        org.apache.kafka.common.quota.ClientQuotaAlteration alteration = new org.apache.kafka.common.quota.ClientQuotaAlteration(
            new org.apache.kafka.common.quota.ClientQuotaEntity(entity), ops);
        try {
            admin.alterClientQuotas(Collections.singletonList(alteration)).all().get(60, TimeUnit.SECONDS);
            return "{\"result\":null}";
        } catch (ExecutionException e) {
            return "{\"result\":" + quote(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage()) + "}";
        }
    }

    private static String brokerConfigSet(Admin admin, String[] args) throws Exception {
        org.apache.kafka.common.config.ConfigResource resource = new org.apache.kafka.common.config.ConfigResource(
            org.apache.kafka.common.config.ConfigResource.Type.BROKER, args[3]);
        org.apache.kafka.clients.admin.AlterConfigOp op = new org.apache.kafka.clients.admin.AlterConfigOp(
            new org.apache.kafka.clients.admin.ConfigEntry(args[4], args[5]),
            org.apache.kafka.clients.admin.AlterConfigOp.OpType.SET);
        try {
            admin.incrementalAlterConfigs(Collections.singletonMap(resource, Collections.singletonList(op)))
                .all().get(60, TimeUnit.SECONDS);
            return "{\"result\":null}";
        } catch (ExecutionException e) {
            String message = e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage();
            return "{\"result\":\"" + message.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
        }
    }

    private static String brokerConfigDescribe(Admin admin, String[] args) throws Exception {
        org.apache.kafka.common.config.ConfigResource resource = new org.apache.kafka.common.config.ConfigResource(
            org.apache.kafka.common.config.ConfigResource.Type.BROKER, args[3]);
        org.apache.kafka.clients.admin.Config config = admin.describeConfigs(Collections.singletonList(resource),
                new org.apache.kafka.clients.admin.DescribeConfigsOptions().includeSynonyms(true))
            .all().get(60, TimeUnit.SECONDS).get(resource);
        List<String> entries = new ArrayList<>();
        for (org.apache.kafka.clients.admin.ConfigEntry e : config.entries()) {
            List<String> synonyms = new ArrayList<>();
            for (org.apache.kafka.clients.admin.ConfigEntry.ConfigSynonym s : e.synonyms()) {
                synonyms.add("{\"name\":" + quote(s.name()) + ",\"value\":" + nullable(s.value())
                    + ",\"source\":" + quote(s.source().name()) + "}");
            }
            entries.add(quote(e.name()) + ":{\"value\":" + nullable(e.value())
                + ",\"sensitive\":" + e.isSensitive() + ",\"type\":" + quote(e.type().name())
                + ",\"source\":" + quote(e.source().name())
                + ",\"synonyms\":[" + String.join(",", synonyms) + "]}");
        }
        return "{\"configs\":{" + String.join(",", entries) + "}}";
    }

    private static String nullable(String s) {
        return s == null ? "null" : quote(s);
    }

    private static String createTopics(Admin admin, String[] args) throws Exception {
        String prefix = args[3];
        int count = Integer.parseInt(args[4]);
        int partitions = Integer.parseInt(args[5]);
        boolean retry = Boolean.parseBoolean(args[6]);
        List<org.apache.kafka.clients.admin.NewTopic> topics = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            topics.add(new org.apache.kafka.clients.admin.NewTopic(prefix + "-" + i, partitions, (short) 1));
        }
        long start = System.nanoTime();
        Map<String, KafkaFuture<Void>> results = admin.createTopics(topics,
            new org.apache.kafka.clients.admin.CreateTopicsOptions().retryOnQuotaViolation(retry)).values();
        List<String> entries = new ArrayList<>();
        for (org.apache.kafka.clients.admin.NewTopic t : topics) {
            String error = "null";
            try {
                results.get(t.name()).get(60, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                error = "\"" + e.getCause().getClass().getSimpleName() + "\"";
            }
            entries.add("\"" + t.name() + "\":" + error);
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        return "{\"ms\":" + ms + ",\"errors\":{" + String.join(",", entries) + "}}";
    }

    private static String quotaDescribe(Admin admin) throws Exception {
        try {
            Map<org.apache.kafka.common.quota.ClientQuotaEntity, Map<String, Double>> all = admin.describeClientQuotas(
                org.apache.kafka.common.quota.ClientQuotaFilter.all()).entities().get(60, TimeUnit.SECONDS);
            List<String> entries = new ArrayList<>();
            for (Map.Entry<org.apache.kafka.common.quota.ClientQuotaEntity, Map<String, Double>> e : all.entrySet()) {
                List<String> parts = new ArrayList<>();
                for (Map.Entry<String, String> c : new java.util.TreeMap<>(e.getKey().entries()).entrySet()) {
                    parts.add(c.getKey() + "=" + (c.getValue() == null ? "-" : c.getValue()));
                }
                List<String> values = new ArrayList<>();
                for (Map.Entry<String, Double> v : new java.util.TreeMap<>(e.getValue()).entrySet()) {
                    values.add(quote(v.getKey()) + ":" + v.getValue());
                }
                entries.add(quote(String.join(",", parts)) + ":{" + String.join(",", values) + "}");
            }
            return "{\"quotas\":{" + String.join(",", entries) + "}}";
        } catch (ExecutionException e) {
            return "{\"error\":" + quote(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage()) + "}";
        }
    }

    private static AclBindingFilter filter(String text) {
        String[] f = text.split("\\|", -1);
        return new AclBindingFilter(
            new ResourcePatternFilter(ResourceType.fromString(f[0]), any(f[2]), PatternType.fromString(f[1])),
            new AccessControlEntryFilter(any(f[3]), any(f[4]), AclOperation.fromString(f[5]), AclPermissionType.fromString(f[6])));
    }

    private static String any(String field) {
        return field.equals("-") ? null : field;
    }

    private static String text(AclBinding acl) {
        return acl.pattern().resourceType() + "|" + acl.pattern().patternType() + "|" + acl.pattern().name() + "|"
            + acl.entry().principal() + "|" + acl.entry().host() + "|" + acl.entry().operation() + "|"
            + acl.entry().permissionType();
    }

    private static String outcome(KafkaFuture<Void> future) throws InterruptedException {
        try {
            future.get(60, TimeUnit.SECONDS);
            return "null";
        } catch (ExecutionException e) {
            return quote(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage());
        } catch (java.util.concurrent.TimeoutException e) {
            return quote("TimeoutException");
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
