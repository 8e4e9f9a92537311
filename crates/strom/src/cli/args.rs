//! The command line of the client commands (`topics`, `produce`, `consume`, `groups`,
//! `configs`, `cluster`, `schemas`): clap definitions with examples in each `--help`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::format::Format;
use super::output::OutputFormat;
use super::parse::{self, StartOffset, TopicPartitions};

/// Options every client command takes, before or after its subcommand.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Brokers to bootstrap from.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        env = "STROM_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,HOST:PORT...]",
        global = true
    )]
    pub bootstrap_server: String,
    /// Output: tables for people or JSON for programs.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, global = true)]
    pub output: OutputFormat,
    /// No progress bars and no notes on stderr (results on stdout stay).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Give up on a broker request after this long [default: 30000, or request.timeout.ms
    /// of the client properties].
    #[arg(long = "request-timeout-ms", value_name = "MS", global = true)]
    pub request_timeout_ms: Option<u64>,
    /// A file of client properties (Kafka's `--command-config`; `key=value` lines, e.g.
    /// `request.timeout.ms=60000`, `max.request.size=4194304`).
    #[arg(long = "command-config", value_name = "PATH", global = true)]
    pub command_config: Option<PathBuf>,
    /// A client property, `-X max.request.size=4194304` (kcat's -X; repeatable; wins over
    /// --command-config).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse::key_value, global = true)]
    pub property: Vec<(String, String)>,
}

impl Common {
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// The client subcommands, flattened into `strom`'s own.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, describe, alter and delete topics.
    #[command(after_help = TOPICS_EXAMPLES)]
    Topics(TopicsArgs),
    /// Produce lines from stdin or a file as records.
    #[command(after_help = PRODUCE_EXAMPLES)]
    Produce(ProduceArgs),
    /// Print records of a topic.
    #[command(after_help = CONSUME_EXAMPLES)]
    Consume(ConsumeArgs),
    /// List, describe, delete consumer and share groups and reset their offsets.
    #[command(after_help = GROUPS_EXAMPLES)]
    Groups(GroupsArgs),
    /// List and describe transactions, abort an ongoing one.
    #[command(after_help = TRANSACTIONS_EXAMPLES)]
    Transactions(TransactionsArgs),
    /// Describe and change topic and broker configs.
    #[command(after_help = CONFIGS_EXAMPLES)]
    Configs(ConfigsArgs),
    /// Describe the cluster: id, controller and brokers.
    Cluster(ClusterArgs),
    /// Add, remove and list ACLs (as kafka-acls.sh).
    #[command(after_help = ACLS_EXAMPLES)]
    Acls(AclsArgs),
    /// Describe and alter client quotas of users and client ids (kafka-configs.sh
    /// --entity-type users/clients).
    #[command(after_help = QUOTAS_EXAMPLES)]
    Quotas(QuotasArgs),
    /// Create, renew, expire and describe delegation tokens (kafka-delegation-tokens.sh).
    #[command(after_help = TOKENS_EXAMPLES)]
    DelegationTokens(DelegationTokensArgs),
    /// Describe the metadata quorum, add and remove controllers (kafka-metadata-quorum.sh).
    #[command(after_help = QUORUM_EXAMPLES)]
    MetadataQuorum(MetadataQuorumArgs),
    /// Describe cluster features and change their levels (kafka-features.sh).
    #[command(after_help = FEATURES_EXAMPLES)]
    Features(FeaturesArgs),
    /// Move partitions between brokers (reassign, decommission) and elect leaders.
    #[command(after_help = PARTITIONS_EXAMPLES)]
    Partitions(PartitionsArgs),
    /// Describe brokers' log directories and move replicas between them (kafka-log-dirs.sh).
    #[command(after_help = LOG_DIRS_EXAMPLES)]
    LogDirs(LogDirsArgs),
    /// List, get, register, check and delete schemas in a schema registry.
    #[command(after_help = SCHEMAS_EXAMPLES)]
    Schemas(SchemasArgs),
    /// Manage Strom Streams (and Kafka Streams) applications.
    #[command(after_help = STREAMS_EXAMPLES)]
    Streams(StreamsArgs),
}

const FEATURES_EXAMPLES: &str = "Examples:
  strom features describe
  strom features downgrade --feature transaction.version=1
  strom features upgrade --feature transaction.version=2 --dry-run";

const QUORUM_EXAMPLES: &str = "Examples:
  strom metadata-quorum describe --status
  strom metadata-quorum describe --replication
  strom metadata-quorum add-controller --controller-id 4 --controller-endpoint ctl4:9093
  strom metadata-quorum remove-controller --controller-id 1";

const SCHEMAS_EXAMPLES: &str = "Examples:
  strom schemas register orders-value --file order.avsc
  strom schemas list
  strom schemas get orders-value --version latest
  strom schemas get --id 1
  strom schemas check orders-value --file order-v2.avsc
  strom schemas delete orders-value --version 1
The registry is --registry-url or STROM_REGISTRY_URL (default http://127.0.0.1:8081).";

/// Where the schema registry is.
#[derive(Args, Debug, Clone)]
pub struct RegistryOpts {
    /// The schema registry's URL.
    #[arg(
        long = "registry-url",
        env = "STROM_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL",
        global = true
    )]
    pub registry_url: String,
}

/// `--value-format`: how record values are written and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum ValueFormat {
    /// The bytes as they are.
    #[default]
    Raw,
    /// Avro in Confluent's wire format (schema id header), as JSON on the terminal.
    Avro,
}

/// `--type`: a schema's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum SchemaFormat {
    #[default]
    Avro,
    Json,
    Protobuf,
}

#[derive(Args, Debug)]
pub struct SchemasArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(subcommand)]
    pub command: SchemasCommand,
}

/// A schema given on the command line: its file, format and references.
#[derive(Args, Debug, Clone)]
pub struct SchemaInput {
    /// The schema's file (.avsc, .json, .proto).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: PathBuf,
    /// The schema's format.
    #[arg(long = "type", short = 't', value_enum, default_value_t = SchemaFormat::Avro)]
    pub schema_type: SchemaFormat,
    /// A reference NAME=SUBJECT:VERSION to another registered schema (repeatable).
    #[arg(long = "reference", short = 'r', value_name = "NAME=SUBJECT:VERSION", value_parser = parse::reference)]
    pub references: Vec<(String, String, i32)>,
}

#[derive(Subcommand, Debug)]
pub enum SchemasCommand {
    /// List subjects.
    List {
        /// Only subjects starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Soft-deleted subjects too.
        #[arg(long)]
        deleted: bool,
    },
    /// Print a subject's version (default: the latest), or a schema by id.
    #[command(group(ArgGroup::new("which").required(true).args(["subject", "id"])))]
    Get {
        /// The subject.
        subject: Option<String>,
        /// The version: a number or latest.
        #[arg(long, short = 'v', default_value = "latest", conflicts_with = "id")]
        version: String,
        /// A schema id instead of a subject.
        #[arg(long)]
        id: Option<i32>,
    },
    /// Register a schema under a subject (the same schema again returns its id).
    Register {
        /// The subject, e.g. TOPIC-value.
        subject: String,
        #[command(flatten)]
        schema: SchemaInput,
        /// Normalize the schema before registering.
        #[arg(long)]
        normalize: bool,
    },
    /// Check a schema against a subject's versions by its compatibility level.
    Check {
        /// The subject.
        subject: String,
        #[command(flatten)]
        schema: SchemaInput,
        /// Against this version only (default: as registering would check).
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
    /// Delete a subject or one of its versions (soft; --permanent after a soft delete).
    Delete {
        /// The subject.
        subject: String,
        /// Only this version (a number or latest).
        #[arg(long, short = 'v')]
        version: Option<String>,
        /// Remove for good (what was soft-deleted before).
        #[arg(long)]
        permanent: bool,
    },
}

const STREAMS_EXAMPLES: &str = "Examples:
  strom streams reset --application-id wordcount --input-topics lines
  strom streams reset --application-id wordcount --input-topics lines --dry-run";

const TOPICS_EXAMPLES: &str = "Examples:
  strom topics create orders --partitions 6 --config retention.ms=86400000
  strom topics list
  strom topics describe orders
  strom topics describe --under-replicated-partitions
  strom topics alter orders --partitions 12 --config cleanup.policy=compact
  strom topics delete orders
  strom topics list --output json --bootstrap-server 10.0.0.5:9092";

const PRODUCE_EXAMPLES: &str = "Examples:
  echo hello | strom produce orders
  strom produce orders -f lines.txt --producer-property transactional.id=loader-1
  echo '{\"id\": 1}' | strom produce orders --value-format avro --schema order.avsc
  strom produce orders --key-separator : <<< 'user-1:{\"total\": 3}'
  strom produce orders --file events.txt --compression zstd --acks all
  strom produce orders --partition 0 --header source=cli --header trace=abc
  strom produce big --file big.txt --max-line-bytes 4194304 --producer-property max.request.size=4194304
Client properties: --command-config FILE, -X KEY=VALUE, --producer-property KEY=VALUE
(Kafka's producer keys, e.g. linger.ms, batch.size, max.request.size); each wins over the
one before, and an explicit --acks or --compression wins over all.";

const CONSUME_EXAMPLES: &str = "Examples:
  strom consume orders --from-beginning --max-messages 10
  strom consume orders --from-beginning --value-format avro --timeout-ms 2000
  strom consume orders --group billing
  strom consume orders --share-group workers --max-messages 100
  strom consume orders --share-group workers --ack-type release --max-messages 1
  strom consume orders --partition 0 --offset 42 --format '%p/%o %k=%s\\n'
  strom consume orders --offset -5 --timeout-ms 2000
  strom consume orders --from-beginning --output json --timeout-ms 1000 | jq .value
  strom consume orders --from-beginning --consumer-property fetch.max.wait.ms=100
Format tokens (kcat's -f): %t topic, %p partition, %o offset, %T timestamp (ms), %k key,
%K key length, %s value, %S value length, %h headers (k=v,...), %% a percent sign;
escapes \\n \\r \\t \\0 \\\\.";

const GROUPS_EXAMPLES: &str = "Examples:
  strom groups list
  strom groups describe billing
  strom groups reset-offsets --group billing --topic orders --to-earliest
  strom groups reset-offsets --group billing --topic orders:0,1 --shift-by -10 --execute
  strom groups reset-offsets --group billing --all-topics --to-datetime 2024-05-01T00:00:00Z --execute
  strom groups delete-offsets --group billing --topic orders
  strom groups delete billing
Share groups (kafka-share-groups.sh): describe shows START-OFFSET and LAG per partition;
reset-offsets sets the share-partition start offset (--to-earliest, --to-latest,
--to-offset, --to-datetime) and delete-offsets deletes the share state of whole topics,
both while the group has no members.";

const CONFIGS_EXAMPLES: &str = "Examples:
  strom configs describe --topic orders
  strom configs describe --topic orders --all
  strom configs alter --topic orders --set retention.ms=3600000 --delete cleanup.policy
  strom configs describe --broker 1";

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create topics.
    Create {
        /// Topic names.
        #[arg(required = true, value_name = "TOPIC")]
        topics: Vec<String>,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replicas of each partition (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor", short = 'r', value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config, `--config retention.ms=86400000` (repeatable).
        #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse::key_value)]
        config: Vec<(String, String)>,
        /// Succeed when a topic exists already.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
        /// Ask the broker to check the request without creating anything.
        #[arg(long = "validate-only")]
        validate_only: bool,
    },
    /// List topics.
    List {
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long = "exclude-internal")]
        exclude_internal: bool,
    },
    /// Describe topics: partitions, leaders, replicas, ISR, offline replicas and
    /// non-default configs.
    Describe {
        /// Topic names (default: every topic).
        #[arg(value_name = "TOPIC")]
        topics: Vec<String>,
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long = "exclude-internal")]
        exclude_internal: bool,
        /// Only partitions whose ISR is smaller than their replica list.
        #[arg(long = "under-replicated-partitions")]
        under_replicated: bool,
        /// Only partitions without a leader, or whose leader is not a live broker.
        #[arg(long = "unavailable-partitions")]
        unavailable: bool,
    },
    /// Add partitions or change configs of a topic.
    #[command(group(ArgGroup::new("change").required(true).multiple(true)))]
    Alter {
        /// The topic to change.
        topic: String,
        /// The new total number of partitions (only grows).
        #[arg(long, short = 'p', group = "change", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Set a config, `--config retention.ms=1000` (repeatable).
        #[arg(long, short = 'c', group = "change", value_name = "KEY=VALUE", value_parser = parse::key_value)]
        config: Vec<(String, String)>,
        /// Remove a config, back to its default (repeatable).
        #[arg(long = "delete-config", group = "change", value_name = "KEY")]
        delete_config: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// Topic names.
        #[arg(required = true, value_name = "TOPIC")]
        topics: Vec<String>,
        /// Succeed when a topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
    },
}

/// `--acks`: how many replicas must have a record before it counts as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    /// Do not wait for the broker.
    #[value(name = "0")]
    None,
    /// The leader has it.
    #[value(name = "1")]
    Leader,
    /// Every in-sync replica has it.
    #[value(name = "all", alias = "-1")]
    All,
}

/// `--compression`: the codec of produced batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// The topic to write to.
    pub topic: String,
    /// Read lines from this file instead of stdin (a progress bar shows on a terminal).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (without it: value only).
    #[arg(long = "key-separator", short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header on every record, `--header k=v`, or `--header k` for a null value (repeatable).
    #[arg(long, short = 'H', value_name = "KEY=VALUE", value_parser = parse::header)]
    pub header: Vec<(String, Option<String>)>,
    /// Acknowledgements to wait for [default: all, or acks of the client properties].
    #[arg(long, value_enum, allow_hyphen_values = true)]
    pub acks: Option<Acks>,
    /// Compression codec of produced batches [default: none, or compression.type of the
    /// client properties].
    #[arg(long, short = 'z', value_enum)]
    pub compression: Option<Compression>,
    /// A producer property, `--producer-property max.request.size=4194304` (Kafka's
    /// console producer's; repeatable; wins over -X and --command-config).
    #[arg(long = "producer-property", value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub producer_property: Vec<(String, String)>,
    /// Send every record to this partition (default: by key, like Kafka's partitioner).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Longest line accepted, in bytes.
    #[arg(
        long = "max-line-bytes",
        default_value_t = 1_048_576,
        value_name = "BYTES"
    )]
    pub max_line_bytes: usize,
    /// Value format: raw bytes, or avro (each line a JSON value, encoded with --schema,
    /// which is registered under --subject).
    #[arg(long = "value-format", value_enum, default_value_t = ValueFormat::Raw, requires_if("avro", "schema"))]
    pub value_format: ValueFormat,
    /// The Avro schema file of --value-format avro.
    #[arg(long, value_name = "PATH")]
    pub schema: Option<PathBuf>,
    /// The subject the schema is registered under (default: TOPIC-value).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// With `--producer-property transactional.id=ID` (every line goes into one
    /// transaction, committed at the end): abort it instead, e.g. to check that
    /// read_committed readers never see the records.
    #[arg(long = "abort-transaction")]
    pub abort_transaction: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("start").args(["from_beginning", "offset"])))]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The topic to read.
    pub topic: String,
    /// Start at the earliest offset when there is no committed one (or without a group).
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    /// Consume as a member of this group, committing its offsets.
    #[arg(long, short = 'g', conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// Consume as a member of this share group (KIP-932): records are shared with the
    /// group's other members, each printed one acknowledged with --ack-type; where it
    /// starts is the group's `share.auto.offset.reset` (or its reset offsets).
    #[arg(long = "share-group", value_name = "GROUP", conflicts_with_all = ["group", "partition", "offset", "from_beginning"])]
    pub share_group: Option<String>,
    /// With --share-group: how each printed record is acknowledged (release: delivered
    /// again, reject: archived).
    #[arg(long = "ack-type", value_enum, default_value_t = AckTypeArg::Accept, requires = "share_group")]
    pub ack_type: AckTypeArg,
    /// Only these partitions (repeatable; default: all).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Vec<i32>,
    /// Start position: beginning, end, N, -N (N before the end) or s@TIMESTAMP_MS.
    #[arg(long, short = 'o', value_parser = parse::start_offset, allow_hyphen_values = true)]
    pub offset: Option<StartOffset>,
    /// Stop after this many records.
    #[arg(long = "max-messages", short = 'c', value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop when no record arrived for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// A consumer property, `--consumer-property fetch.max.wait.ms=100` (Kafka's console
    /// consumer's; repeatable; wins over -X and --command-config).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub consumer_property: Vec<(String, String)>,
    /// kcat-like format of each record, e.g. '%k=%s\n' (default: the value and a newline).
    #[arg(long, short = 'f', value_parser = parse_format)]
    pub format: Option<Format>,
    /// Value format: raw bytes, or avro (Confluent's wire format, shown as JSON with the
    /// writer's schema from the registry).
    #[arg(long = "value-format", value_enum, default_value_t = ValueFormat::Raw)]
    pub value_format: ValueFormat,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

/// A share group's acknowledgement of a printed record.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckTypeArg {
    Accept,
    Release,
    Reject,
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

const TRANSACTIONS_EXAMPLES: &str = "Examples:
  strom transactions list
  strom transactions list --state Ongoing
  strom transactions describe payments-tx-1
  strom transactions abort payments-tx-1";

#[derive(Args, Debug)]
pub struct TransactionsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// List transactional ids with their producer id and state.
    List {
        /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
        /// CompleteAbort); repeatable.
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
        /// Only these producer ids; repeatable.
        #[arg(long = "producer-id", value_name = "ID")]
        producer_ids: Vec<i64>,
    },
    /// Describe transactional ids: coordinator, state, producer id and epoch, timeout,
    /// start time and the partitions of the ongoing transaction.
    Describe {
        #[arg(required = true, value_name = "TRANSACTIONAL-ID")]
        transactional_ids: Vec<String>,
    },
    /// Abort the ongoing transaction of a transactional id, as a new producer with the id
    /// would: the coordinator aborts it and bumps the epoch, fencing the producer running it.
    Abort {
        #[arg(value_name = "TRANSACTIONAL-ID")]
        transactional_id: String,
    },
}

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List groups (consumer, classic and share) with their type and state.
    List,
    /// Describe groups: per partition CURRENT-OFFSET, LOG-END-OFFSET, LAG and owner.
    #[command(group(ArgGroup::new("which").required(true).args(["groups", "all_groups"])))]
    Describe {
        /// Group ids.
        #[arg(value_name = "GROUP")]
        groups: Vec<String>,
        /// Every group.
        #[arg(long = "all-groups")]
        all_groups: bool,
        /// Members instead of offsets: CONSUMER-ID HOST CLIENT-ID #PARTITIONS.
        #[arg(long, conflicts_with = "state")]
        members: bool,
        /// The group's state, coordinator and protocol.
        #[arg(long)]
        state: bool,
    },
    /// Delete empty groups and their committed offsets.
    Delete {
        /// Group ids.
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Delete a group's offsets of some topics: a share group's share state of whole topics
    /// (kafka-share-groups.sh --delete-offsets; the group must have no members), a consumer
    /// group's committed offsets (kafka-consumer-groups.sh --delete-offsets; the topics must
    /// not be subscribed).
    DeleteOffsets {
        /// The group whose offsets go.
        #[arg(long, short = 'g')]
        group: String,
        /// TOPIC, or TOPIC:P1,P2 for a consumer group (repeatable).
        #[arg(long, short = 't', required = true, value_parser = parse::topic_partitions, value_name = "TOPIC[:P,...]")]
        topic: Vec<TopicPartitions>,
    },
    /// Plan (default, --dry-run) or apply (--execute) new committed offsets for a group.
    #[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    ResetOffsets {
        /// The group whose offsets change (it must have no active members).
        #[arg(long, short = 'g')]
        group: String,
        /// TOPIC or TOPIC:P1,P2 (repeatable).
        #[arg(long, short = 't', value_parser = parse::topic_partitions, value_name = "TOPIC[:P,...]")]
        topic: Vec<TopicPartitions>,
        /// Every topic the group has committed offsets for.
        #[arg(long = "all-topics")]
        all_topics: bool,
        /// To the log start offset.
        #[arg(long = "to-earliest")]
        to_earliest: bool,
        /// To the log end offset.
        #[arg(long = "to-latest")]
        to_latest: bool,
        /// An offset (clamped to the partition's range, like Kafka).
        #[arg(long = "to-offset", value_name = "N")]
        to_offset: Option<i64>,
        /// The first offset at or after this time, e.g. 2024-05-01T12:00:00.000 (local) or ...Z.
        #[arg(long = "to-datetime", value_name = "TIME", value_parser = parse::datetime_ms)]
        to_datetime: Option<i64>,
        /// Move the committed offset by N (negative goes back).
        #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Show the plan only (the default).
        #[arg(long = "dry-run", conflicts_with = "execute")]
        dry_run: bool,
        /// Commit the planned offsets.
        #[arg(long)]
        execute: bool,
    },
}

#[derive(Args, Debug)]
pub struct ConfigsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: ConfigsCommand,
}

/// The resource a config command is about.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ConfigTarget {
    /// A topic's configs.
    #[arg(long)]
    pub topic: Option<String>,
    /// A broker's configs, by node id.
    #[arg(long)]
    pub broker: Option<i32>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Print configs: the ones set explicitly, or all with --all.
    Describe {
        #[command(flatten)]
        target: ConfigTarget,
        /// Include defaults too.
        #[arg(long)]
        all: bool,
    },
    /// Set and delete configs (incrementally; others stay as they are).
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
    Alter {
        #[command(flatten)]
        target: ConfigTarget,
        /// `--set retention.ms=1000` (repeatable).
        #[arg(long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
        set: Vec<(String, String)>,
        /// Remove a config, back to its default (repeatable).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

const QUOTAS_EXAMPLES: &str = "Examples:
  strom quotas alter --user alice --add-config producer_byte_rate=1048576,request_percentage=50
  strom quotas alter --user-default --client-id etl --add-config controller_mutation_rate=10
  strom quotas alter --user alice --delete-config request_percentage
  strom quotas describe
  strom quotas describe --user alice
Keys: producer_byte_rate, consumer_byte_rate (bytes/s), request_percentage (percent of one
request thread), controller_mutation_rate (partitions/s). --user X is kafka-configs.sh's
--entity-type users --entity-name X, --user-default its --entity-default; likewise
--client-id and --client-default for --entity-type clients.";

const TOKENS_EXAMPLES: &str =
    "Examples (over an authenticated connection: --command-config with SASL):
  strom delegation-tokens create --max-life-time-period -1 --renewer-principal User:bob
  strom delegation-tokens create --owner-principal User:etl --command-config admin.properties
  strom delegation-tokens describe --owner-principal User:alice
  strom delegation-tokens renew --hmac <HMAC> --renew-time-period -1
  strom delegation-tokens expire --hmac <HMAC> --expiry-time-period -1
A client authenticates with a token through SCRAM: user name the token id, password the
HMAC, and the extension tokenauth=true (ScramLoginModule ... tokenauth=\"true\").";

#[derive(Args, Debug)]
pub struct DelegationTokensArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: DelegationTokensCommand,
}

#[derive(Subcommand, Debug)]
pub enum DelegationTokensCommand {
    /// Create a token (kafka-delegation-tokens.sh --create); prints its id and HMAC.
    Create(TokenCreateArgs),
    /// Renew a token (--renew).
    Renew(TokenChangeArgs),
    /// Expire a token (--expire); a negative period expires it now.
    Expire(TokenExpireArgs),
    /// List the tokens you may see (--describe).
    Describe(TokenDescribeArgs),
}

#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    /// Milliseconds the token may live at most; -1 for the broker's maximum.
    #[arg(long = "max-life-time-period", default_value_t = -1, allow_negative_numbers = true)]
    pub max_life_time_period_ms: i64,
    /// A principal (`User:name`) that may renew the token; repeatable.
    #[arg(long = "renewer-principal")]
    pub renewer_principal: Vec<String>,
    /// Create the token for this principal (`User:name`; needs CREATE_TOKENS on it).
    #[arg(long = "owner-principal")]
    pub owner_principal: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenChangeArgs {
    /// The token's HMAC, base64 (as `create` prints it).
    #[arg(long)]
    pub hmac: String,
    /// Milliseconds to renew for; -1 for the broker's default.
    #[arg(long = "renew-time-period", default_value_t = -1, allow_negative_numbers = true)]
    pub renew_time_period_ms: i64,
}

#[derive(Args, Debug)]
pub struct TokenExpireArgs {
    /// The token's HMAC, base64.
    #[arg(long)]
    pub hmac: String,
    /// Milliseconds until the token expires; negative expires it now.
    #[arg(long = "expiry-time-period", default_value_t = -1, allow_negative_numbers = true)]
    pub expiry_time_period_ms: i64,
}

#[derive(Args, Debug)]
pub struct TokenDescribeArgs {
    /// Only tokens this principal owns or may renew; repeatable (none: every token).
    #[arg(long = "owner-principal")]
    pub owner_principal: Vec<String>,
}

#[derive(Args, Debug)]
pub struct QuotasArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: QuotasCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuotasCommand {
    /// Show quotas: of one entity, or of every user and client id.
    Describe(QuotaEntityArgs),
    /// Set (--add-config) and remove (--delete-config) quotas of one entity.
    Alter(QuotaAlterArgs),
}

/// A user and/or client-id entity, each named or the default.
#[derive(Args, Debug, Clone)]
pub struct QuotaEntityArgs {
    /// A user (principal name without `User:`).
    #[arg(long)]
    pub user: Option<String>,
    /// The default user entity.
    #[arg(long = "user-default")]
    pub user_default: bool,
    /// A client id.
    #[arg(long = "client-id")]
    pub client_id: Option<String>,
    /// The default client-id entity.
    #[arg(long = "client-default")]
    pub client_default: bool,
}

#[derive(Args, Debug)]
pub struct QuotaAlterArgs {
    #[command(flatten)]
    pub entity: QuotaEntityArgs,
    /// `key=value,...` to set.
    #[arg(long = "add-config")]
    pub add_config: Option<String>,
    /// `key,...` to remove.
    #[arg(long = "delete-config")]
    pub delete_config: Vec<String>,
}

const ACLS_EXAMPLES: &str = "Examples:
  strom acls add --allow-principal User:alice --operation Read --operation Write --topic orders
  strom acls add --allow-principal User:alice --operation Read --group billing
  strom acls add --deny-principal User:bob --deny-host 10.0.0.9 --operation All --topic pay --resource-pattern-type prefixed
  strom acls list
  strom acls list --topic orders --resource-pattern-type match
  strom acls remove --allow-principal User:alice --operation Write --topic orders
Operations: All, Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens. Needs an authorizer on the broker
(authorizer.class.name).";

#[derive(Args, Debug)]
pub struct AclsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: AclsCommand,
}

#[derive(Subcommand, Debug)]
pub enum AclsCommand {
    /// Add one ACL per principal, host and operation (kafka-acls.sh --add).
    Add(AclChangeArgs),
    /// Remove the ACLs matching (kafka-acls.sh --remove; without a principal, every ACL of
    /// the resource).
    Remove(AclChangeArgs),
    /// List ACLs, of one resource or all (kafka-acls.sh --list).
    List(AclListArgs),
}

/// The resource of an ACL command (at most one).
#[derive(Args, Debug, Clone)]
pub struct AclResourceArgs {
    /// A topic (`*` for every topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// A consumer group (`*` for every group).
    #[arg(long)]
    pub group: Option<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (`*` for every one).
    #[arg(long = "transactional-id")]
    pub transactional_id: Option<String>,
    /// literal or prefixed (add); also any or match (list, remove).
    #[arg(long = "resource-pattern-type")]
    pub resource_pattern_type: Option<String>,
}

#[derive(Args, Debug)]
pub struct AclChangeArgs {
    #[command(flatten)]
    pub resource: AclResourceArgs,
    /// A principal to allow, `User:alice` (repeatable).
    #[arg(long = "allow-principal")]
    pub allow_principal: Vec<String>,
    /// A principal to deny (repeatable).
    #[arg(long = "deny-principal")]
    pub deny_principal: Vec<String>,
    /// Hosts the allow applies to [default: *].
    #[arg(long = "allow-host")]
    pub allow_host: Vec<String>,
    /// Hosts the deny applies to [default: *].
    #[arg(long = "deny-host")]
    pub deny_host: Vec<String>,
    /// Operations (repeatable) [default: All].
    #[arg(long)]
    pub operation: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AclListArgs {
    #[command(flatten)]
    pub resource: AclResourceArgs,
    /// Only ACLs of this principal.
    #[arg(long)]
    pub principal: Option<String>,
}

const LOG_DIRS_EXAMPLES: &str = "Examples:
  strom log-dirs describe
  strom log-dirs describe --broker-list 1,2 --topic-list orders
  strom log-dirs move --topic orders --partition 0 --broker 1 --dir /data/disk2 --wait";

#[derive(Args, Debug)]
pub struct LogDirsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: LogDirsCommand,
}

#[derive(Subcommand, Debug)]
pub enum LogDirsCommand {
    /// Each broker's log directories: offline or not, total and usable bytes, and the
    /// replicas in each (future ones: moves in progress).
    Describe {
        /// Only these brokers [default: every broker].
        #[arg(long = "broker-list", value_name = "ID,ID...", value_delimiter = ',')]
        broker_list: Vec<i32>,
        /// Only replicas of these topics [default: every topic].
        #[arg(
            long = "topic-list",
            value_name = "TOPIC,TOPIC...",
            value_delimiter = ','
        )]
        topic_list: Vec<String>,
    },
    /// Move a broker's replica of a partition into another of its log directories
    /// (AlterReplicaLogDirs); it keeps serving while it is copied.
    Move {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The broker whose replica moves [default: the only broker, if there is one].
        #[arg(long)]
        broker: Option<i32>,
        /// The target directory, as the broker's log.dirs names it.
        #[arg(long)]
        dir: String,
        /// Wait until the replica is in the target directory, with progress, up to
        /// --timeout-s.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long = "timeout-s", value_name = "SECONDS", default_value_t = 600)]
        timeout_s: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Describe,
}

const PARTITIONS_EXAMPLES: &str = "Examples:
  strom partitions reassign --reassignment-json-file plan.json --wait
  strom partitions reassign --reassignment-json-file plan.json --verify
  strom partitions reassign --reassignment-json-file plan.json --cancel
  strom partitions reassign --generate --broker-list 2,3,4 --topics orders
  strom partitions reassign --generate --exclude-broker 1 --minimal-moves --output json > plan.json
  strom partitions elect-leaders --election-type preferred --all-topic-partitions
  strom partitions elect-leaders --election-type unclean --topic orders --partition 0
Plans use kafka-reassign-partitions.sh's JSON: {\"version\":1,\"partitions\":[{\"topic\":\"orders\",\"partition\":0,\"replicas\":[2,3,4]}]}";

#[derive(Args, Debug)]
pub struct PartitionsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: PartitionsCommand,
}

#[derive(Subcommand, Debug)]
pub enum PartitionsCommand {
    /// Execute, verify or cancel a reassignment plan, or generate one (kafka-reassign-partitions.sh).
    #[command(group(ArgGroup::new("mode").args(["verify", "cancel", "generate"]).multiple(false)))]
    Reassign {
        /// The plan (Kafka's JSON format); executed unless --verify or --cancel.
        #[arg(
            long = "reassignment-json-file",
            value_name = "PATH",
            required_unless_present = "generate"
        )]
        reassignment_json_file: Option<PathBuf>,
        /// Report whether each partition of the plan has reached its replicas.
        #[arg(long)]
        verify: bool,
        /// Cancel the plan's ongoing reassignments (they revert to the old replicas).
        #[arg(long)]
        cancel: bool,
        /// Print the current assignment and a proposed one (Kafka's JSON) of the topics over
        /// the allowed brokers (--broker-list, minus --exclude-broker), placed as topic
        /// creation places replicas: Kafka's rack-aware round robin (no two replicas of a
        /// partition on one rack while racks suffice). With --output json, only the
        /// proposal.
        #[arg(long)]
        generate: bool,
        /// With --generate: the brokers replicas may be on [default: every broker].
        #[arg(long = "broker-list", value_name = "ID,ID...", value_delimiter = ',')]
        broker_list: Vec<i32>,
        /// With --generate: a broker to move every replica off (repeatable).
        #[arg(long = "exclude-broker", value_name = "ID")]
        exclude_broker: Vec<i32>,
        /// With --generate: only these topics [default: all, internal ones included].
        #[arg(long, value_name = "TOPIC,TOPIC...", value_delimiter = ',')]
        topics: Vec<String>,
        /// With --generate: the topics as Kafka's JSON,
        /// {"version":1,"topics":[{"topic":"orders"}]} (added to --topics).
        #[arg(long = "topics-to-move-json-file", value_name = "PATH")]
        topics_to_move_json_file: Option<PathBuf>,
        /// With --generate: ignore the brokers' racks (needed when only some brokers
        /// have one, as in Kafka).
        #[arg(long = "disable-rack-aware")]
        disable_rack_aware: bool,
        /// With --generate: instead of Kafka's whole-topic placement, change only the
        /// replicas on disallowed brokers, each to the least loaded allowed broker (a rack
        /// the partition does not use yet first): the fewest moves for a decommission.
        #[arg(long = "minimal-moves")]
        minimal_moves: bool,
        /// After executing (or verifying): wait until every partition of the plan has
        /// moved, with progress, up to --timeout-s.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long = "timeout-s", value_name = "SECONDS", default_value_t = 600)]
        timeout_s: u64,
    },
    /// Elect preferred or unclean leaders (kafka-leader-election.sh).
    #[command(group(ArgGroup::new("which").args(["topic", "all_topic_partitions", "path_to_json_file"]).required(true)))]
    ElectLeaders {
        /// PREFERRED: move leadership to the first replica where it is in sync; UNCLEAN:
        /// elect a leader for leaderless partitions even from outside the ISR (may lose
        /// records).
        #[arg(long = "election-type", value_enum)]
        election_type: ElectionKind,
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: only this partition.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Every partition of every topic.
        #[arg(long = "all-topic-partitions")]
        all_topic_partitions: bool,
        /// Kafka's JSON: {"partitions":[{"topic":"t","partition":0}]}.
        #[arg(long = "path-to-json-file", value_name = "PATH")]
        path_to_json_file: Option<PathBuf>,
    },
}

/// `--election-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ElectionKind {
    #[value(alias = "PREFERRED")]
    Preferred,
    #[value(alias = "UNCLEAN")]
    Unclean,
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: FeaturesCommand,
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// Each feature's supported range, finalized level and the finalized epoch.
    Describe,
    /// Raise features to the given levels.
    Upgrade {
        /// `NAME=LEVEL`, repeatable.
        #[arg(long, value_name = "NAME=LEVEL", required = true)]
        feature: Vec<String>,
        /// Validate only: change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lower features to the given levels.
    Downgrade {
        /// `NAME=LEVEL`, repeatable.
        #[arg(long, value_name = "NAME=LEVEL", required = true)]
        feature: Vec<String>,
        /// Kafka's unsafe downgrade (for features other than metadata.version the same as
        /// a safe one).
        #[arg(long)]
        unsafe_downgrade: bool,
        /// Validate only: change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct MetadataQuorumArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: MetadataQuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum MetadataQuorumCommand {
    /// The quorum's leader, epoch, high watermark, voters and observers (`--status`, the
    /// default), or each member's log end offset, lag and last fetch (`--replication`).
    Describe {
        #[arg(long, conflicts_with = "replication")]
        status: bool,
        #[arg(long)]
        replication: bool,
    },
    /// Make a controller that runs as an observer (started with
    /// controller.quorum.bootstrap.servers) a voter, once it has caught up.
    AddController {
        #[arg(long, value_name = "ID")]
        controller_id: i32,
        /// Its controller listener, `host:port`.
        #[arg(long, value_name = "HOST:PORT")]
        controller_endpoint: String,
        /// The replica's metadata directory id (Kafka's base64 or a hyphenated UUID; its
        /// `directory.id`) [default: that of the observer with this id].
        #[arg(long, value_name = "UUID")]
        controller_directory_id: Option<String>,
    },
    /// Remove a voter from the quorum (a controller being retired or replaced).
    RemoveController {
        #[arg(long, value_name = "ID")]
        controller_id: i32,
        /// The voter's metadata directory id (Kafka's base64 or a hyphenated UUID; `describe
        /// --replication` shows it). A voter recorded with one is only removed by it
        /// [default: the one the quorum records for this id].
        #[arg(long, value_name = "UUID")]
        controller_directory_id: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: StreamsCommand,
}

#[derive(Subcommand, Debug)]
pub enum StreamsCommand {
    /// Reset an application to reprocess its input (like kafka-streams-application-reset):
    /// input topics to the earliest offset, intermediate topics to the latest, internal
    /// topics deleted. Every instance must be stopped.
    Reset {
        /// The application id (its consumer group).
        #[arg(long = "application-id")]
        application_id: String,
        /// Topics the application reads, reprocessed from their earliest offset.
        #[arg(
            long = "input-topics",
            value_delimiter = ',',
            value_name = "TOPIC[,TOPIC...]"
        )]
        input_topics: Vec<String>,
        /// User topics the application writes and reads back (through), skipped to the end.
        #[arg(
            long = "intermediate-topics",
            value_delimiter = ',',
            value_name = "TOPIC[,TOPIC...]"
        )]
        intermediate_topics: Vec<String>,
        /// Show what would change; change nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}
