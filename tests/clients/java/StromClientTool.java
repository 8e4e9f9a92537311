// Drives the official Java Kafka client (kafka-clients) for Strom's integration tests.
// Every subcommand prints one JSON object on stdout; bytes travel as base64. pytest runs it
// with a timeout, and every wait inside is bounded too.
//
//   murmur2 HEX...                       Utils.murmur2 of each hex-encoded key
//   produce BOOTSTRAP TOPIC CODEC FILE [k=v...]
//                                        FILE: one record a line, "key\tvalue\theaders",
//                                        base64 fields, headers "k:v,k:v" (base64 each)
//   produce-outcomes BOOTSTRAP TOPIC FILE [k=v...]
//                                        FILE: one record a line, "key\tvalue\ttimestamp_ms",
//                                        key "-" for none, base64 fields, timestamp empty
//                                        for none; all to partition 0, in one batch (linger
//                                        1 s), uncompressed. Prints each record's outcome,
//                                        {"offset":N} or {"error":exception class,
//                                        "message":...}, in order
//   consume BOOTSTRAP TOPIC COUNT TIMEOUT_MS [k=v...]
//                                        assigns every partition from the beginning
//   admin BOOTSTRAP OP ARGS...           create TOPIC PARTITIONS [k=v...] | describe TOPIC |
//                                        configs TOPIC | add-partitions TOPIC TOTAL |
//                                        delete-records TOPIC PARTITION BEFORE |
//                                        offset TOPIC PARTITION earliest|latest|max|TS_MS |
//                                        reassign TOPIC P=ID,ID...|P=cancel... (what
//                                        kafka-reassign-partitions.sh --execute/--cancel call) |
//                                        reassignments TOPIC | replicas TOPIC (its --verify) |
//                                        elect TOPIC preferred|unclean P... (kafka-leader-
//                                        election.sh) | log-dirs BROKER (describeLogDirs:
//                                        each dir's error, total and usable bytes, replicas) |
//                                        move-dir TOPIC BROKER DIR P... (alterReplicaLogDirs) |
//                                        replica-dirs TOPIC BROKER P... (describeReplicaLogDirs);
//                                        per-partition outcomes are null or the exception's
//                                        class name
//   load BOOTSTRAP TOPIC PARTITIONS RATE PREFIX [k=v...]
//                                        idempotent acks=all producer for the cluster tests:
//                                        value (and key) "PREFIX-<seq>" to partition
//                                        seq % PARTITIONS at RATE records/s until "stop" (or
//                                        EOF) on stdin, then flushes. Unlike the others it
//                                        prints a JSON line per outcome as it happens:
//                                        {"ack":[p,offset,value]} or {"error":value,"name":
//                                        exception class,"retriable":bool,"message":...};
//                                        the last line is {"done":{sent,acked,failed}}

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

public final class StromClientTool {
    private static final long CALL_TIMEOUT_MS = 30_000;

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            throw new IllegalArgumentException("usage: murmur2|produce|consume|admin ...");
        }
        String out;
        switch (args[0]) {
            case "murmur2": out = murmur2(args); break;
            case "produce": out = produce(args); break;
            case "produce-outcomes": out = produceOutcomes(args); break;
            case "consume": out = consume(args); break;
            case "admin": out = admin(args); break;
            case "load": out = load(args); break;
            default: throw new IllegalArgumentException("unknown command " + args[0]);
        }
        System.out.println(out);
        System.out.flush();
        // Client threads may linger; the answer is printed, so end now.
        System.exit(0);
    }

    private static String murmur2(String[] args) {
        List<String> hashes = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            hashes.add(Integer.toString(Utils.murmur2(hex(args[i]))));
        }
        return "{\"hashes\":[" + String.join(",", hashes) + "]}";
    }

    private static String produceOutcomes(String[] args) throws Exception {
        Properties props = extra(args, 4);
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "1000");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, "1048576");
        List<String> lines = java.nio.file.Files.readAllLines(
            java.nio.file.Path.of(args[3]), StandardCharsets.UTF_8);
        List<String> outcomes = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(
                props, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (String line : lines) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] f = line.split("\t", -1);
                byte[] key = b64(f[0]);
                Long timestamp = f.length > 2 && !f[2].isEmpty() ? Long.parseLong(f[2]) : null;
                sent.add(producer.send(
                    new ProducerRecord<>(args[2], 0, timestamp, key, b64(f[1]))));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                try {
                    RecordMetadata m = f.get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    outcomes.add("{\"offset\":" + m.offset() + "}");
                } catch (java.util.concurrent.ExecutionException e) {
                    Throwable cause = e.getCause();
                    outcomes.add("{\"error\":" + str(cause.getClass().getName())
                        + ",\"message\":" + str(String.valueOf(cause.getMessage())) + "}");
                }
            }
        }
        return "{\"outcomes\":[" + String.join(",", outcomes) + "]}";
    }

    private static String produce(String[] args) throws Exception {
        Properties props = extra(args, 5);
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args[3]);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "50");
        List<String> lines = java.nio.file.Files.readAllLines(
            java.nio.file.Path.of(args[4]), StandardCharsets.UTF_8);
        List<String> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(
                props, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (String line : lines) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] f = line.split("\t", -1);
                ProducerRecord<byte[], byte[]> record =
                    new ProducerRecord<>(args[2], null, b64(f[0]), b64(f[1]));
                if (f.length > 2 && !f[2].isEmpty()) {
                    for (String h : f[2].split(",")) {
                        String[] kv = h.split(":", -1);
                        record.headers().add(
                            new String(b64(kv[0]), StandardCharsets.UTF_8), b64(kv[1]));
                    }
                }
                sent.add(producer.send(record));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                RecordMetadata m = f.get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                acks.add("{\"partition\":" + m.partition() + ",\"offset\":" + m.offset() + "}");
            }
        }
        return "{\"acks\":[" + String.join(",", acks) + "]}";
    }

    private static String consume(String[] args) throws Exception {
        String topic = args[2];
        int count = Integer.parseInt(args[3]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[4]);
        Properties props = extra(args, 5);
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        List<String> records = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofMillis(CALL_TIMEOUT_MS))) {
                partitions.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            while (records.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    records.add(recordJson(r));
                }
            }
        }
        return "{\"records\":[" + String.join(",", records) + "]}";
    }

    private static String recordJson(ConsumerRecord<byte[], byte[]> r) {
        List<String> headers = new ArrayList<>();
        for (Header h : r.headers()) {
            headers.add("[" + str(enc(h.key().getBytes(StandardCharsets.UTF_8))) + ","
                + str(enc(h.value())) + "]");
        }
        return "{\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
            + ",\"timestamp\":" + r.timestamp()
            + ",\"key\":" + str(enc(r.key())) + ",\"value\":" + str(enc(r.value()))
            + ",\"headers\":[" + String.join(",", headers) + "]}";
    }

    private static String admin(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        String op = args[2];
        String topic = args[3];
        try (Admin admin = Admin.create(props)) {
            switch (op) {
                case "create": {
                    NewTopic t = new NewTopic(topic, Integer.parseInt(args[4]), (short) 1);
                    Map<String, String> configs = new HashMap<>();
                    for (int i = 5; i < args.length; i++) {
                        String[] kv = args[i].split("=", 2);
                        configs.put(kv[0], kv[1]);
                    }
                    t.configs(configs);
                    admin.createTopics(List.of(t)).all().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    return "{\"created\":" + str(topic) + "}";
                }
                case "describe": {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(topic);
                    List<String> parts = new ArrayList<>();
                    for (TopicPartitionInfo p : d.partitions()) {
                        parts.add("{\"partition\":" + p.partition() + ",\"leader\":"
                            + (p.leader() == null ? -1 : p.leader().id())
                            + ",\"replicas\":" + p.replicas().size()
                            + ",\"isr\":" + p.isr().size() + "}");
                    }
                    return "{\"name\":" + str(d.name()) + ",\"topic_id\":" + str(d.topicId().toString())
                        + ",\"internal\":" + d.isInternal()
                        + ",\"partitions\":[" + String.join(",", parts) + "]}";
                }
                case "configs": {
                    ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                    Config config = admin.describeConfigs(List.of(res)).all()
                        .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(res);
                    List<String> entries = new ArrayList<>();
                    for (ConfigEntry e : config.entries()) {
                        entries.add(str(e.name()) + ":{\"value\":" + str(e.value())
                            + ",\"source\":" + str(e.source().name())
                            + ",\"read_only\":" + e.isReadOnly()
                            + ",\"sensitive\":" + e.isSensitive() + "}");
                    }
                    return "{\"configs\":{" + String.join(",", entries) + "}}";
                }
                case "add-partitions": {
                    admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(Integer.parseInt(args[4]))))
                        .all().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    return "{\"partitions\":" + Integer.parseInt(args[4]) + "}";
                }
                case "delete-records": {
                    TopicPartition tp = new TopicPartition(topic, Integer.parseInt(args[4]));
                    long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(Long.parseLong(args[5]))))
                        .lowWatermarks().get(tp).get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).lowWatermark();
                    return "{\"low_watermark\":" + low + "}";
                }
                case "offset": {
                    TopicPartition tp = new TopicPartition(topic, Integer.parseInt(args[4]));
                    OffsetSpec spec;
                    switch (args[5]) {
                        case "earliest": spec = OffsetSpec.earliest(); break;
                        case "latest": spec = OffsetSpec.latest(); break;
                        case "max": spec = OffsetSpec.maxTimestamp(); break;
                        default: spec = OffsetSpec.forTimestamp(Long.parseLong(args[5]));
                    }
                    ListOffsetsResult.ListOffsetsResultInfo info = admin.listOffsets(Map.of(tp, spec))
                        .partitionResult(tp).get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    return "{\"offset\":" + info.offset() + ",\"timestamp\":" + info.timestamp() + "}";
                }
                case "reassign": {
                    Map<TopicPartition, Optional<NewPartitionReassignment>> moves = new HashMap<>();
                    for (int i = 4; i < args.length; i++) {
                        String[] kv = args[i].split("=", 2);
                        TopicPartition tp = new TopicPartition(topic, Integer.parseInt(kv[0]));
                        if (kv[1].equals("cancel")) {
                            moves.put(tp, Optional.empty());
                        } else {
                            List<Integer> ids = new ArrayList<>();
                            for (String id : kv[1].split(",")) ids.add(Integer.parseInt(id));
                            moves.put(tp, Optional.of(new NewPartitionReassignment(ids)));
                        }
                    }
                    return outcomes(admin.alterPartitionReassignments(moves).values());
                }
                case "reassignments": {
                    Map<TopicPartition, PartitionReassignment> ongoing = admin.listPartitionReassignments()
                        .reassignments().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    Map<Integer, String> parts = new TreeMap<>();
                    for (Map.Entry<TopicPartition, PartitionReassignment> e : ongoing.entrySet()) {
                        if (!e.getKey().topic().equals(topic)) continue;
                        PartitionReassignment r = e.getValue();
                        parts.put(e.getKey().partition(), "{\"replicas\":" + r.replicas()
                            + ",\"adding\":" + r.addingReplicas() + ",\"removing\":" + r.removingReplicas() + "}");
                    }
                    List<String> items = new ArrayList<>();
                    for (Map.Entry<Integer, String> e : parts.entrySet()) items.add(str(e.getKey().toString()) + ":" + e.getValue());
                    return "{" + String.join(",", items) + "}";
                }
                case "replicas": {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(topic);
                    List<String> parts = new ArrayList<>();
                    for (TopicPartitionInfo p : d.partitions()) {
                        List<Integer> replicas = new ArrayList<>();
                        for (org.apache.kafka.common.Node n : p.replicas()) replicas.add(n.id());
                        List<Integer> isr = new ArrayList<>();
                        for (org.apache.kafka.common.Node n : p.isr()) isr.add(n.id());
                        parts.add(str(Integer.toString(p.partition())) + ":{\"leader\":"
                            + (p.leader() == null ? -1 : p.leader().id())
                            + ",\"replicas\":" + replicas + ",\"isr\":" + isr + "}");
                    }
                    return "{" + String.join(",", parts) + "}";
                }
                case "elect": {
                    ElectionType type = args[4].equals("unclean") ? ElectionType.UNCLEAN : ElectionType.PREFERRED;
                    Set<TopicPartition> tps = new java.util.HashSet<>();
                    for (int i = 5; i < args.length; i++) tps.add(new TopicPartition(topic, Integer.parseInt(args[i])));
                    Map<TopicPartition, Optional<Throwable>> results = admin.electLeaders(type, tps)
                        .partitions().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    Map<Integer, String> byPartition = new TreeMap<>();
                    for (Map.Entry<TopicPartition, Optional<Throwable>> e : results.entrySet()) {
                        byPartition.put(e.getKey().partition(),
                            e.getValue().map(t -> str(t.getClass().getSimpleName())).orElse("null"));
                    }
                    List<String> items = new ArrayList<>();
                    for (Map.Entry<Integer, String> e : byPartition.entrySet()) items.add(str(e.getKey().toString()) + ":" + e.getValue());
                    return "{" + String.join(",", items) + "}";
                }
                case "log-dirs": {
                    int broker = Integer.parseInt(args[3]);
                    Map<String, org.apache.kafka.clients.admin.LogDirDescription> dirs = admin
                        .describeLogDirs(List.of(broker)).allDescriptions()
                        .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(broker);
                    List<String> items = new ArrayList<>();
                    for (Map.Entry<String, org.apache.kafka.clients.admin.LogDirDescription> e : new TreeMap<>(dirs).entrySet()) {
                        org.apache.kafka.clients.admin.LogDirDescription d = e.getValue();
                        List<String> replicas = new ArrayList<>();
                        for (Map.Entry<TopicPartition, org.apache.kafka.clients.admin.ReplicaInfo> r : d.replicaInfos().entrySet()) {
                            replicas.add("{\"topic\":" + str(r.getKey().topic()) + ",\"partition\":" + r.getKey().partition()
                                + ",\"size\":" + r.getValue().size() + ",\"lag\":" + r.getValue().offsetLag()
                                + ",\"future\":" + r.getValue().isFuture() + "}");
                        }
                        items.add(str(e.getKey()) + ":{\"error\":"
                            + (d.error() == null ? "null" : str(d.error().getClass().getSimpleName()))
                            + ",\"total\":" + d.totalBytes().orElse(-1) + ",\"usable\":" + d.usableBytes().orElse(-1)
                            + ",\"replicas\":[" + String.join(",", replicas) + "]}");
                    }
                    return "{" + String.join(",", items) + "}";
                }
                case "move-dir": {
                    int broker = Integer.parseInt(args[4]);
                    Map<org.apache.kafka.common.TopicPartitionReplica, String> moves = new HashMap<>();
                    for (int i = 6; i < args.length; i++) {
                        moves.put(new org.apache.kafka.common.TopicPartitionReplica(topic, Integer.parseInt(args[i]), broker), args[5]);
                    }
                    Map<Integer, String> byPartition = new TreeMap<>();
                    for (Map.Entry<org.apache.kafka.common.TopicPartitionReplica, KafkaFuture<Void>> e
                            : admin.alterReplicaLogDirs(moves).values().entrySet()) {
                        String outcome = "null";
                        try {
                            e.getValue().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                        } catch (ExecutionException ex) {
                            outcome = str(ex.getCause().getClass().getSimpleName());
                        }
                        byPartition.put(e.getKey().partition(), outcome);
                    }
                    List<String> items = new ArrayList<>();
                    for (Map.Entry<Integer, String> e : byPartition.entrySet()) items.add(str(e.getKey().toString()) + ":" + e.getValue());
                    return "{" + String.join(",", items) + "}";
                }
                case "replica-dirs": {
                    int broker = Integer.parseInt(args[4]);
                    List<org.apache.kafka.common.TopicPartitionReplica> replicas = new ArrayList<>();
                    for (int i = 5; i < args.length; i++) {
                        replicas.add(new org.apache.kafka.common.TopicPartitionReplica(topic, Integer.parseInt(args[i]), broker));
                    }
                    Map<org.apache.kafka.common.TopicPartitionReplica, org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo> infos =
                        admin.describeReplicaLogDirs(replicas).all().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    Map<Integer, String> byPartition = new TreeMap<>();
                    for (Map.Entry<org.apache.kafka.common.TopicPartitionReplica, org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo> e : infos.entrySet()) {
                        org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo info = e.getValue();
                        byPartition.put(e.getKey().partition(), "{\"current\":"
                            + (info.getCurrentReplicaLogDir() == null ? "null" : str(info.getCurrentReplicaLogDir()))
                            + ",\"future\":" + (info.getFutureReplicaLogDir() == null ? "null" : str(info.getFutureReplicaLogDir()))
                            + ",\"future_lag\":" + info.getFutureReplicaOffsetLag() + "}");
                    }
                    List<String> items = new ArrayList<>();
                    for (Map.Entry<Integer, String> e : byPartition.entrySet()) items.add(str(e.getKey().toString()) + ":" + e.getValue());
                    return "{" + String.join(",", items) + "}";
                }
                default:
                    throw new IllegalArgumentException("unknown admin op " + op);
            }
        }
    }

    /** Per-partition outcomes of an admin call: null, or the exception's class name. */
    private static String outcomes(Map<TopicPartition, KafkaFuture<Void>> futures) throws Exception {
        Map<Integer, String> byPartition = new TreeMap<>();
        for (Map.Entry<TopicPartition, KafkaFuture<Void>> e : futures.entrySet()) {
            String outcome = "null";
            try {
                e.getValue().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (ExecutionException x) {
                outcome = str(x.getCause().getClass().getSimpleName());
            }
            byPartition.put(e.getKey().partition(), outcome);
        }
        List<String> items = new ArrayList<>();
        for (Map.Entry<Integer, String> e : byPartition.entrySet()) items.add(str(e.getKey().toString()) + ":" + e.getValue());
        return "{" + String.join(",", items) + "}";
    }

    private static final java.io.PrintStream LOAD_OUT = new java.io.PrintStream(
        new java.io.BufferedOutputStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), 1 << 16),
        false, StandardCharsets.UTF_8);

    private static synchronized void loadEmit(String line) {
        LOAD_OUT.println(line);
    }

    private static String loadError(String value, Exception e) {
        return "{\"error\":" + str(value) + ",\"name\":" + str(e.getClass().getSimpleName())
            + ",\"retriable\":" + (e instanceof RetriableException)
            + ",\"message\":" + str(String.valueOf(e.getMessage())) + "}";
    }

    private static String load(String[] args) throws Exception {
        String topic = args[2];
        int partitions = Integer.parseInt(args[3]);
        double rate = Double.parseDouble(args[4]);
        String prefix = args[5];
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "45000");
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "10000");
        props.putAll(extra(args, 6));
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (java.io.BufferedReader in = new java.io.BufferedReader(
                    new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
                    // other lines are ignored
                }
            } catch (java.io.IOException e) {
                // EOF or a closed pipe: stop as on "stop"
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        long sent = 0;
        long start = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(
                props, new ByteArraySerializer(), new ByteArraySerializer())) {
            sending:
            while (!stop.get()) {
                long due = (long) ((System.nanoTime() - start) / 1e9 * rate);
                while (sent < due && !stop.get()) {
                    String value = prefix + "-" + sent;
                    byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
                    int partition = (int) (sent % partitions);
                    sent++;
                    try {
                        producer.send(new ProducerRecord<>(topic, partition, bytes, bytes), (m, e) -> {
                            if (e == null) {
                                acked.incrementAndGet();
                                loadEmit("{\"ack\":[" + m.partition() + "," + m.offset() + "," + str(value) + "]}");
                            } else {
                                failed.incrementAndGet();
                                loadEmit(loadError(value, e));
                            }
                        });
                    } catch (KafkaException e) {
                        // Refused before it was sent (a fatal producer state, or max.block.ms
                        // waiting for metadata): reported, and a non-retriable one ends the run.
                        failed.incrementAndGet();
                        loadEmit(loadError(value, e));
                        if (!(e instanceof RetriableException)) {
                            break sending;
                        }
                    }
                }
                synchronized (StromClientTool.class) {
                    LOAD_OUT.flush();
                }
                Thread.sleep(5);
            }
            producer.flush();
        }
        synchronized (StromClientTool.class) {
            LOAD_OUT.flush();
        }
        return "{\"done\":{\"sent\":" + sent + ",\"acked\":" + acked.get() + ",\"failed\":" + failed.get() + "}}";
    }

    private static Properties extra(String[] args, int from) {
        Properties props = new Properties();
        for (int i = from; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        return props;
    }

    private static byte[] b64(String s) {
        return s.equals("-") ? null : Base64.getDecoder().decode(s);
    }

    private static String enc(byte[] b) {
        return b == null ? null : Base64.getEncoder().encodeToString(b);
    }

    private static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
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
