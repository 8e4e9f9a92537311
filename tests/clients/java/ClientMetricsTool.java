// Drives the Java client's KIP-714 client metrics for Strom's tests. Prints one JSON object
// on stdout; every wait is bounded.
//
//   alter BOOTSTRAP NAME [key=value | key=]...
//                      IncrementalAlterConfigs on the CLIENT_METRICS resource NAME (SET, or
//                      DELETE for an empty value); then lists the client-metrics resources
//                      (listConfigResources and the older listClientMetricsResources) and
//                      describes NAME: {"error":null|exception class,"message":...,
//                      "listed":[...],"listed_v0":[...],"configs":{key:{value,source}}}
//   produce BOOTSTRAP TOPIC CLIENT_ID MILLIS
//                      a producer (enable.metrics.push=true, the default) sending one record
//                      every 50 ms for MILLIS, then closed (its last push is terminating):
//                      {"client_instance_id":...,"sent":N}

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ClientMetricsResourceListing;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ClientMetricsTool {
    private static final long CALL_TIMEOUT_MS = 30_000;

    public static void main(String[] args) throws Exception {
        String out;
        switch (args[0]) {
            case "alter": out = alter(args); break;
            case "produce": out = produce(args); break;
            default: throw new IllegalArgumentException("unknown command " + args[0]);
        }
        System.out.println(out);
        System.out.flush();
        System.exit(0);
    }

    @SuppressWarnings("deprecation")
    private static String alter(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        ConfigResource res = new ConfigResource(ConfigResource.Type.CLIENT_METRICS, args[2]);
        List<AlterConfigOp> ops = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            ops.add(kv[1].isEmpty()
                ? new AlterConfigOp(new ConfigEntry(kv[0], null), AlterConfigOp.OpType.DELETE)
                : new AlterConfigOp(new ConfigEntry(kv[0], kv[1]), AlterConfigOp.OpType.SET));
        }
        try (Admin admin = Admin.create(props)) {
            String error = null;
            String message = null;
            try {
                admin.incrementalAlterConfigs(Map.of(res, ops)).all().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                error = e.getCause().getClass().getSimpleName();
                message = e.getCause().getMessage();
            }
            List<String> listed = new ArrayList<>();
            for (ConfigResource r : admin.listConfigResources(Set.of(ConfigResource.Type.CLIENT_METRICS),
                    new ListConfigResourcesOptions()).all().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                listed.add(str(r.name()));
            }
            List<String> listedV0 = new ArrayList<>();
            Collection<ClientMetricsResourceListing> old = admin.listClientMetricsResources().all()
                .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            for (ClientMetricsResourceListing r : old) {
                listedV0.add(str(r.name()));
            }
            Config config = admin.describeConfigs(List.of(res)).all()
                .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(res);
            List<String> entries = new ArrayList<>();
            for (ConfigEntry e : config.entries()) {
                entries.add(str(e.name()) + ":{\"value\":" + str(e.value())
                    + ",\"source\":" + str(e.source().name()) + "}");
            }
            return "{\"error\":" + str(error) + ",\"message\":" + str(message)
                + ",\"listed\":[" + String.join(",", listed) + "]"
                + ",\"listed_v0\":[" + String.join(",", listedV0) + "]"
                + ",\"configs\":{" + String.join(",", entries) + "}}";
        }
    }

    private static String produce(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, args[3]);
        props.put(ProducerConfig.ENABLE_METRICS_PUSH_CONFIG, "true");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        long millis = Long.parseLong(args[4]);
        int sent = 0;
        String id;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            long end = System.currentTimeMillis() + millis;
            while (System.currentTimeMillis() < end) {
                producer.send(new ProducerRecord<>(args[2], "k" + sent, "v" + sent)).get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                sent++;
                Thread.sleep(50);
            }
            id = producer.clientInstanceId(Duration.ofSeconds(10)).toString();
        }
        return "{\"client_instance_id\":" + str(id) + ",\"sent\":" + sent + "}";
    }

    private static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
