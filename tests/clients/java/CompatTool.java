// Drives the Java client (kafka-clients) through the APIs Kafka's command-line tools use, for
// Strom's compatibility tests (test_compat.py). Every subcommand prints one JSON object on
// stdout; a failure the test expects is printed as {"error": exception class, "message": ...}
// rather than thrown. Every wait is bounded.
//
//   init-transactions BOOTSTRAP TXID     a transactional producer's initTransactions (60 s
//                                        max.block.ms, so a retry loop would show as time):
//                                        {"error", "message", "elapsed_ms"}
//   transaction BOOTSTRAP TXID TOPIC N M a transactional producer commits N records
//                                        ("commit-i") then aborts M ("abort-i"): {"error"}
//   eos-copy BOOTSTRAP TXID GROUP IN OUT N
//                                        consume-transform-produce: a read_committed consumer
//                                        of group GROUP and a transactional producer copy N
//                                        records from IN to OUT, committing the input offsets
//                                        with sendOffsetsToTransaction, 10 records a
//                                        transaction; the first transaction (its records
//                                        prefixed "aborted-") is aborted and its input read
//                                        again: {"error", "copied", "transactions"}
//   read BOOTSTRAP TOPIC ISOLATION       a consumer of ISOLATION (read_committed or
//                                        read_uncommitted) reads partition 0 from the
//                                        beginning to its end offset (the LSO under
//                                        read_committed): {"error", "end", "position",
//                                        "values"}
//   list-transactions BOOTSTRAP PATTERN DURATION_MS
//                                        Admin listTransactions filtered by transactional id
//                                        pattern (KIP-1152; "-" none) and duration (KIP-994;
//                                        -1 none): {"listed": {id: state}} or the error
//   find-hanging BOOTSTRAP TOPIC MAX_MS  kafka-transactions.sh find-hanging's Admin calls for
//                                        TOPIC (describeTopics, describeProducers, then
//                                        listTransactions by producer id and
//                                        describeTransactions), with the maximum transaction
//                                        timeout in ms: {"hanging": [{"partition",
//                                        "producer_id", "producer_epoch",
//                                        "coordinator_epoch", "start_offset"}]}
//   abort-txn BOOTSTRAP TOPIC PARTITION START_OFFSET
//                                        kafka-transactions.sh abort --start-offset: the open
//                                        transaction starting there (describeProducers) is
//                                        aborted (abortTransaction): {"ok": true} or the error
//   transactions BOOTSTRAP TXID          Admin listTransactions and describeTransactions:
//                                        {"listed": {id: state}, "describe": {"state",
//                                        "producer_id", "producer_epoch", "partitions"}}
//   acls BOOTSTRAP                       describeAcls, createAcls, deleteAcls: each one's
//                                        outcome {"describe": {...}, "create": ..., "delete": ...}
//   quorum BOOTSTRAP                     describeMetadataQuorum: leader, epoch, high watermark,
//                                        voters and observers with their offsets, times and
//                                        directory ids, and nodes {"id": ["NAME://host:port"]}
//   features BOOTSTRAP                   describeFeatures: finalized and supported ranges,
//                                        finalized epoch
//   update-feature BOOTSTRAP NAME LEVEL UPGRADE|SAFE_DOWNGRADE|UNSAFE_DOWNGRADE [validate]
//                                        updateFeatures: {"ok": true} or the error
//   alter-broker BOOTSTRAP NAME KEY VALUE|-
//                                        incrementalAlterConfigs on broker NAME ("" is the
//                                        cluster default): SET, or DELETE for "-"
//   describe-broker BOOTSTRAP NAME       describeConfigs of broker NAME: {"configs":
//                                        {key: {"value", "source", "read_only"}}}
//   add-voter BOOTSTRAP ID HOST PORT [DIR]
//                                        addRaftVoter (kafka-metadata-quorum.sh add-controller)
//                                        with one CONTROLLER endpoint and directory id DIR
//                                        (Kafka's text form; default none): {"ok": true} or
//                                        the error
//   remove-voter BOOTSTRAP ID [DIR]      removeRaftVoter (remove-controller) of the voter with
//                                        directory id DIR (default none): {"ok": true} or the
//                                        error

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
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.RaftVoterEndpoint;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class CompatTool {
    private static final long CALL_TIMEOUT_MS = 30_000;

    public static void main(String[] args) throws Exception {
        String out;
        switch (args[0]) {
            case "init-transactions": out = initTransactions(args[1], args[2]); break;
            case "transaction": out = transaction(args); break;
            case "transactions": out = transactions(args[1], args[2]); break;
            case "eos-copy": out = eosCopy(args); break;
            case "read": out = read(args); break;
            case "list-transactions": out = listTransactions(args); break;
            case "find-hanging": out = findHanging(args); break;
            case "abort-txn": out = abortTxn(args); break;
            case "acls": out = acls(args[1]); break;
            case "quorum": out = quorum(args[1]); break;
            case "features": out = features(args[1]); break;
            case "update-feature": out = updateFeature(args); break;
            case "alter-broker": out = alterBroker(args); break;
            case "describe-broker": out = describeBroker(args[1], args[2]); break;
            case "add-voter": out = addVoter(args); break;
            case "remove-voter": out = removeVoter(args); break;
            default: throw new IllegalArgumentException("unknown command " + args[0]);
        }
        System.out.println(out);
        System.out.flush();
        System.exit(0);
    }

    private static String initTransactions(String bootstrap, String transactionalId) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        long start = System.nanoTime();
        String outcome;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            outcome = "\"error\":null,\"message\":null";
        } catch (Exception e) {
            outcome = error(e);
        }
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        return "{" + outcome + ",\"elapsed_ms\":" + elapsedMs + "}";
    }

    private static String transaction(String[] args) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[2]);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        String topic = args[3];
        int commit = Integer.parseInt(args[4]);
        int abort = Integer.parseInt(args[5]);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < commit; i++) {
                producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topic, ("commit-" + i).getBytes()));
            }
            producer.commitTransaction();
            producer.beginTransaction();
            for (int i = 0; i < abort; i++) {
                producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(topic, ("abort-" + i).getBytes()));
            }
            producer.flush();
            producer.abortTransaction();
            return "{\"error\":null}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static String read(String[] args) {
        Properties cp = new Properties();
        cp.put("bootstrap.servers", args[1]);
        cp.put("isolation.level", args[3]);
        cp.put("enable.auto.commit", "false");
        cp.put("key.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        org.apache.kafka.common.TopicPartition tp = new org.apache.kafka.common.TopicPartition(args[2], 0);
        List<org.apache.kafka.common.TopicPartition> tps = List.of(tp);
        try (org.apache.kafka.clients.consumer.KafkaConsumer<byte[], byte[]> consumer =
                 new org.apache.kafka.clients.consumer.KafkaConsumer<>(cp)) {
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long end = consumer.endOffsets(tps).get(tp);
            List<String> values = new ArrayList<>();
            long deadline = System.currentTimeMillis() + CALL_TIMEOUT_MS;
            while (consumer.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (org.apache.kafka.clients.consumer.ConsumerRecord<byte[], byte[]> r
                         : consumer.poll(java.time.Duration.ofMillis(200))) {
                    values.add(str(new String(r.value(), java.nio.charset.StandardCharsets.UTF_8)));
                }
            }
            return "{\"error\":null,\"end\":" + end + ",\"position\":" + consumer.position(tp)
                + ",\"values\":[" + String.join(",", values) + "]}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static Map<org.apache.kafka.common.TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> nextOffsets(
            org.apache.kafka.clients.consumer.ConsumerRecords<byte[], byte[]> records) {
        Map<org.apache.kafka.common.TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> offsets = new java.util.HashMap<>();
        for (org.apache.kafka.common.TopicPartition tp : records.partitions()) {
            List<org.apache.kafka.clients.consumer.ConsumerRecord<byte[], byte[]>> list = records.records(tp);
            offsets.put(tp, new org.apache.kafka.clients.consumer.OffsetAndMetadata(list.get(list.size() - 1).offset() + 1));
        }
        return offsets;
    }

    private static String eosCopy(String[] args) {
        String bootstrap = args[1];
        String out = args[5];
        int n = Integer.parseInt(args[6]);
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", args[3]);
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("isolation.level", "read_committed");
        cp.put("max.poll.records", "10");
        cp.put("key.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[2]);
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        int copied = 0;
        int transactions = 0;
        try (org.apache.kafka.clients.consumer.KafkaConsumer<byte[], byte[]> consumer =
                 new org.apache.kafka.clients.consumer.KafkaConsumer<>(cp);
             KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            consumer.subscribe(List.of(args[4]));
            producer.initTransactions();
            boolean aborted = false;
            while (copied < n && System.nanoTime() < deadline) {
                org.apache.kafka.clients.consumer.ConsumerRecords<byte[], byte[]> records =
                    consumer.poll(java.time.Duration.ofMillis(500));
                if (records.isEmpty()) continue;
                producer.beginTransaction();
                for (org.apache.kafka.clients.consumer.ConsumerRecord<byte[], byte[]> r : records) {
                    byte[] value = aborted ? r.value() : ("aborted-" + new String(r.value())).getBytes();
                    producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(out, r.key(), value));
                }
                producer.sendOffsetsToTransaction(nextOffsets(records), consumer.groupMetadata());
                if (!aborted) {
                    producer.abortTransaction();
                    aborted = true;
                    // Read the aborted transaction's input again.
                    for (org.apache.kafka.common.TopicPartition tp : records.partitions()) {
                        consumer.seek(tp, records.records(tp).get(0).offset());
                    }
                    continue;
                }
                producer.commitTransaction();
                copied += records.count();
                transactions++;
            }
            return "{\"error\":null,\"copied\":" + copied + ",\"transactions\":" + transactions + "}";
        } catch (Exception e) {
            return "{" + error(e) + ",\"copied\":" + copied + "}";
        }
    }

    private static String listTransactions(String[] args) {
        try (Admin admin = admin(args[1])) {
            org.apache.kafka.clients.admin.ListTransactionsOptions options =
                new org.apache.kafka.clients.admin.ListTransactionsOptions();
            if (!args[2].equals("-")) options.filterOnTransactionalIdPattern(args[2]);
            long duration = Long.parseLong(args[3]);
            if (duration >= 0) options.filterOnDuration(duration);
            StringBuilder listed = new StringBuilder("{");
            for (org.apache.kafka.clients.admin.TransactionListing t :
                    admin.listTransactions(options).all().get(30, TimeUnit.SECONDS)) {
                if (listed.length() > 1) listed.append(',');
                listed.append('"').append(t.transactionalId()).append("\":\"").append(t.state()).append('"');
            }
            return "{\"listed\":" + listed.append('}') + "}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static String findHanging(String[] args) {
        String topic = args[2];
        long maxTimeoutMs = Long.parseLong(args[3]);
        try (Admin admin = admin(args[1])) {
            List<org.apache.kafka.common.TopicPartition> partitions = new ArrayList<>();
            for (org.apache.kafka.common.TopicPartitionInfo info : admin.describeTopics(List.of(topic))
                    .allTopicNames().get(30, TimeUnit.SECONDS).get(topic).partitions()) {
                partitions.add(new org.apache.kafka.common.TopicPartition(topic, info.partition()));
            }
            // Open transactions past the maximum timeout, as the tool collects candidates.
            long now = System.currentTimeMillis();
            Map<Long, List<Object[]>> open = new java.util.HashMap<>();
            for (Map.Entry<org.apache.kafka.common.TopicPartition, org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState> e :
                    admin.describeProducers(partitions).all().get(30, TimeUnit.SECONDS).entrySet()) {
                for (org.apache.kafka.clients.admin.ProducerState p : e.getValue().activeProducers()) {
                    if (p.currentTransactionStartOffset().isPresent() && now - p.lastTimestamp() > maxTimeoutMs) {
                        open.computeIfAbsent(p.producerId(), k -> new ArrayList<>()).add(new Object[] {e.getKey(), p});
                    }
                }
            }
            Map<Long, String> ids = new java.util.HashMap<>();
            if (!open.isEmpty()) {
                for (org.apache.kafka.clients.admin.TransactionListing t : admin.listTransactions(
                        new org.apache.kafka.clients.admin.ListTransactionsOptions().filterProducerIds(open.keySet()))
                        .all().get(30, TimeUnit.SECONDS)) {
                    if (open.containsKey(t.producerId())) ids.put(t.producerId(), t.transactionalId());
                }
            }
            Map<String, org.apache.kafka.clients.admin.TransactionDescription> descriptions = new java.util.HashMap<>();
            if (!ids.isEmpty()) {
                org.apache.kafka.clients.admin.DescribeTransactionsResult described =
                    admin.describeTransactions(new java.util.HashSet<>(ids.values()));
                for (String id : ids.values()) {
                    try {
                        descriptions.put(id, described.description(id).get(30, TimeUnit.SECONDS));
                    } catch (ExecutionException e) {
                        if (!(e.getCause() instanceof org.apache.kafka.common.errors.TransactionalIdNotFoundException)) throw e;
                    }
                }
            }
            StringBuilder hanging = new StringBuilder("[");
            for (Map.Entry<Long, List<Object[]>> e : open.entrySet()) {
                String id = ids.get(e.getKey());
                org.apache.kafka.clients.admin.TransactionDescription d = id == null ? null : descriptions.get(id);
                for (Object[] o : e.getValue()) {
                    org.apache.kafka.common.TopicPartition tp = (org.apache.kafka.common.TopicPartition) o[0];
                    org.apache.kafka.clients.admin.ProducerState p = (org.apache.kafka.clients.admin.ProducerState) o[1];
                    // Hanging: no transactional id, no description, or the coordinator's
                    // transaction does not name the partition (TransactionsCommand's rule).
                    if (d != null && d.topicPartitions().contains(tp)) continue;
                    if (hanging.length() > 1) hanging.append(',');
                    hanging.append("{\"partition\":").append(tp.partition())
                        .append(",\"producer_id\":").append(p.producerId())
                        .append(",\"producer_epoch\":").append(p.producerEpoch())
                        .append(",\"coordinator_epoch\":").append(p.coordinatorEpoch().orElse(-1))
                        .append(",\"start_offset\":").append(p.currentTransactionStartOffset().orElse(-1))
                        .append('}');
                }
            }
            return "{\"hanging\":" + hanging.append(']') + "}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static String abortTxn(String[] args) {
        org.apache.kafka.common.TopicPartition tp =
            new org.apache.kafka.common.TopicPartition(args[2], Integer.parseInt(args[3]));
        long startOffset = Long.parseLong(args[4]);
        try (Admin admin = admin(args[1])) {
            for (org.apache.kafka.clients.admin.ProducerState p : admin.describeProducers(List.of(tp))
                    .partitionResult(tp).get(30, TimeUnit.SECONDS).activeProducers()) {
                if (p.currentTransactionStartOffset().orElse(-1L) == startOffset) {
                    admin.abortTransaction(new org.apache.kafka.clients.admin.AbortTransactionSpec(
                        tp, p.producerId(), (short) p.producerEpoch(), p.coordinatorEpoch().orElse(0)))
                        .all().get(30, TimeUnit.SECONDS);
                    return "{\"ok\":true}";
                }
            }
            return "{\"error\":\"NoSuchTransaction\",\"message\":\"no open transaction starts at " + startOffset + "\"}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static String transactions(String bootstrap, String transactionalId) {
        try (Admin admin = admin(bootstrap)) {
            StringBuilder listed = new StringBuilder("{");
            for (org.apache.kafka.clients.admin.TransactionListing t :
                    admin.listTransactions().all().get(30, TimeUnit.SECONDS)) {
                if (listed.length() > 1) listed.append(',');
                listed.append('"').append(t.transactionalId()).append("\":\"").append(t.state()).append('"');
            }
            listed.append('}');
            org.apache.kafka.clients.admin.TransactionDescription d = admin
                .describeTransactions(List.of(transactionalId)).description(transactionalId)
                .get(30, TimeUnit.SECONDS);
            StringBuilder partitions = new StringBuilder("[");
            for (org.apache.kafka.common.TopicPartition tp : d.topicPartitions()) {
                if (partitions.length() > 1) partitions.append(',');
                partitions.append('"').append(tp).append('"');
            }
            partitions.append(']');
            return "{\"listed\":" + listed + ",\"describe\":{\"state\":\"" + d.state()
                + "\",\"producer_id\":" + d.producerId() + ",\"producer_epoch\":" + d.producerEpoch()
                + ",\"partitions\":" + partitions + "}}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        return Admin.create(props);
    }

    private static String acls(String bootstrap) {
        AclBinding binding = new AclBinding(
            new ResourcePattern(ResourceType.TOPIC, "compat-acl", PatternType.LITERAL),
            new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
        try (Admin admin = admin(bootstrap)) {
            String describe = outcome(admin.describeAcls(AclBindingFilter.ANY).values());
            String create = outcome(admin.createAcls(List.of(binding)).all());
            String delete = outcome(admin.deleteAcls(List.of(AclBindingFilter.ANY)).all());
            return "{\"describe\":" + describe + ",\"create\":" + create + ",\"delete\":" + delete + "}";
        }
    }

    private static String quorum(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            return "{\"leader_id\":" + q.leaderId() + ",\"leader_epoch\":" + q.leaderEpoch()
                + ",\"high_watermark\":" + q.highWatermark()
                + ",\"voters\":" + replicas(q.voters()) + ",\"observers\":" + replicas(q.observers())
                + ",\"nodes\":" + nodes(q.nodes()) + "}";
        }
    }

    private static String addVoter(String[] args) {
        RaftVoterEndpoint endpoint = new RaftVoterEndpoint("CONTROLLER", args[3], Integer.parseInt(args[4]));
        try (Admin admin = admin(args[1])) {
            return outcome(admin.addRaftVoter(Integer.parseInt(args[2]), directory(args, 5), Set.of(endpoint)).all());
        }
    }

    private static String removeVoter(String[] args) {
        try (Admin admin = admin(args[1])) {
            return outcome(admin.removeRaftVoter(Integer.parseInt(args[2]), directory(args, 3)).all());
        }
    }

    /** args[i] as a directory id (Kafka's Uuid text form), or Uuid.ZERO_UUID (none) when absent. */
    private static Uuid directory(String[] args, int i) {
        return args.length > i ? Uuid.fromString(args[i]) : Uuid.ZERO_UUID;
    }

    /** QuorumInfo.nodes() as {"id": ["NAME://host:port", ...]}. */
    private static String nodes(Map<Integer, QuorumInfo.Node> nodes) {
        List<String> out = new ArrayList<>();
        for (Map.Entry<Integer, QuorumInfo.Node> e : nodes.entrySet()) {
            List<String> endpoints = new ArrayList<>();
            for (RaftVoterEndpoint ep : e.getValue().endpoints()) {
                endpoints.add(str(ep.name() + "://" + ep.host() + ":" + ep.port()));
            }
            out.add(str(e.getKey().toString()) + ":[" + String.join(",", endpoints) + "]");
        }
        return "{" + String.join(",", out) + "}";
    }

    private static String replicas(List<QuorumInfo.ReplicaState> states) {
        List<String> out = new ArrayList<>();
        for (QuorumInfo.ReplicaState r : states) {
            out.add("{\"id\":" + r.replicaId() + ",\"directory_id\":" + str(r.replicaDirectoryId().toString())
                + ",\"log_end_offset\":" + r.logEndOffset()
                + ",\"last_fetch_ms\":" + r.lastFetchTimestamp().orElse(-1L)
                + ",\"last_caught_up_ms\":" + r.lastCaughtUpTimestamp().orElse(-1L) + "}");
        }
        return "[" + String.join(",", out) + "]";
    }

    private static String features(String bootstrap) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            FeatureMetadata f = admin.describeFeatures().featureMetadata().get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            List<String> finalized = new ArrayList<>();
            for (Map.Entry<String, FinalizedVersionRange> e : f.finalizedFeatures().entrySet()) {
                finalized.add(str(e.getKey()) + ":{\"min\":" + e.getValue().minVersionLevel()
                    + ",\"max\":" + e.getValue().maxVersionLevel() + "}");
            }
            List<String> supported = new ArrayList<>();
            for (Map.Entry<String, SupportedVersionRange> e : f.supportedFeatures().entrySet()) {
                supported.add(str(e.getKey()) + ":{\"min\":" + e.getValue().minVersion()
                    + ",\"max\":" + e.getValue().maxVersion() + "}");
            }
            return "{\"finalized\":{" + String.join(",", finalized) + "},\"supported\":{"
                + String.join(",", supported) + "},\"finalized_epoch\":"
                + f.finalizedFeaturesEpoch().orElse(-1L) + "}";
        }
    }

    private static String updateFeature(String[] args) {
        FeatureUpdate update = new FeatureUpdate(Short.parseShort(args[3]),
            FeatureUpdate.UpgradeType.valueOf(args[4]));
        UpdateFeaturesOptions options = new UpdateFeaturesOptions()
            .validateOnly(args.length > 5 && args[5].equals("validate"));
        try (Admin admin = admin(args[1])) {
            return outcome(admin.updateFeatures(Map.of(args[2], update), options).all());
        }
    }

    private static String alterBroker(String[] args) {
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, args[2]);
        AlterConfigOp op = args[4].equals("-")
            ? new AlterConfigOp(new ConfigEntry(args[3], null), AlterConfigOp.OpType.DELETE)
            : new AlterConfigOp(new ConfigEntry(args[3], args[4]), AlterConfigOp.OpType.SET);
        try (Admin admin = admin(args[1])) {
            return outcome(admin.incrementalAlterConfigs(Map.of(res, List.of(op))).all());
        }
    }

    private static String describeBroker(String bootstrap, String name) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, name);
        try (Admin admin = admin(bootstrap)) {
            Config config = admin.describeConfigs(List.of(res)).all()
                .get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(res);
            List<String> entries = new ArrayList<>();
            for (ConfigEntry e : config.entries()) {
                entries.add(str(e.name()) + ":{\"value\":" + str(e.value())
                    + ",\"source\":" + str(e.source().name())
                    + ",\"read_only\":" + e.isReadOnly() + "}");
            }
            return "{\"configs\":{" + String.join(",", entries) + "}}";
        }
    }

    /** {"ok": true} or {"error": class of the cause, "message": its message}. */
    private static String outcome(KafkaFuture<?> future) {
        try {
            future.get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            return "{\"ok\":true}";
        } catch (ExecutionException e) {
            return "{" + error(e.getCause()) + "}";
        } catch (Exception e) {
            return "{" + error(e) + "}";
        }
    }

    private static String error(Throwable e) {
        return "\"error\":" + str(e.getClass().getSimpleName()) + ",\"message\":" + str(e.getMessage());
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
