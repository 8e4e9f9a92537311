//! The `strom` binary: the broker, its tools and the command line client.

mod cli;
mod dump;
mod preflight;
mod properties;
mod schema_registry;
mod scram_bootstrap;
mod server;
mod server_config;
mod status;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "strom",
    bin_name = "strom",
    version,
    about = "Strom: Kafka-compatible event streaming in one binary",
    after_help = "Examples:
  strom server config/server.properties
  strom schema-registry --override kafkastore.bootstrap.servers=127.0.0.1:9092
  strom topics create orders --partitions 3
  echo hello | strom produce orders
  strom consume orders --from-beginning --max-messages 1
  strom groups describe billing
Client commands read the broker address from --bootstrap-server or STROM_BOOTSTRAP
(default 127.0.0.1:9092). Exit codes: 0 ok, 1 broker or client error, 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version {
        /// Output: a line for people or JSON for programs.
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Human)]
        output: cli::OutputFormat,
    },
    /// Run a server node from a Java-properties file (Kafka's server.properties keys).
    Server {
        /// The properties file; without it, defaults (a single node: broker on
        /// 127.0.0.1:9092, controller on 127.0.0.1:9093, data in ./data).
        file: Option<PathBuf>,
        /// Set a key, overriding the file: `--override key=value` (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// A first SCRAM user, as `kafka-storage.sh format --add-scram`:
        /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' (repeatable; written once, when
        /// the user has no credential of that mechanism yet).
        #[arg(long = "add-scram", value_name = "MECHANISM=[name=..,password=..]")]
        add_scram: Vec<String>,
    },
    /// Run a Schema Registry compatible with Confluent's, as a client of a Kafka cluster
    /// (Confluent's schema-registry.properties keys).
    SchemaRegistry {
        /// The properties file; without it, defaults (http://127.0.0.1:8081) and the
        /// cluster from --override kafkastore.bootstrap.servers=HOST:PORT.
        file: Option<PathBuf>,
        /// Set a key, overriding the file: `--override key=value` (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Prepare a node's storage (kafka-storage.sh): format, random-uuid.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Metadata tools.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
    #[command(flatten)]
    Client(Box<cli::ClientCommand>),
    /// Print a shell completion script: `strom completions bash > /etc/bash_completion.d/strom`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Print a new random id (for --cluster-id).
    RandomUuid,
    /// Write meta.properties into each of log.dirs and metadata.log.dir and, for a controller
    /// of a dynamic quorum (controller.quorum.bootstrap.servers), the initial voters.
    Format {
        /// The node's properties file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Set a key, overriding the file: `--override key=value` (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(short = 't', long = "cluster-id")]
        cluster_id: String,
        /// This controller is the quorum's only initial voter.
        #[arg(short = 's', long, conflicts_with_all = ["initial_controllers", "no_initial_controllers"])]
        standalone: bool,
        /// The initial voters, `id@host:port[:directory-id],...`.
        #[arg(
            short = 'I',
            long,
            value_name = "VOTERS",
            conflicts_with = "no_initial_controllers"
        )]
        initial_controllers: Option<String>,
        /// No initial voters: the controller joins as an observer, to be added later
        /// (strom metadata-quorum add-controller).
        #[arg(short = 'N', long)]
        no_initial_controllers: bool,
        /// Leave directories that are already formatted as they are.
        #[arg(short = 'g', long)]
        ignore_formatted: bool,
        /// A SCRAM user in the bootstrap of the metadata log (kafka-storage.sh format
        /// --add-scram): `SCRAM-SHA-512=[name=alice,password=alice-secret]` (repeatable).
        /// The controller listener accepts it before the node has caught up; the active
        /// controller writes it into the metadata log of a new cluster.
        #[arg(
            short = 'S',
            long = "add-scram",
            value_name = "MECHANISM=[name=..,password=..]"
        )]
        add_scram: Vec<String>,
    },
}

#[derive(Subcommand)]
enum MetadataCommand {
    /// Print a metadata log directory's records, snapshot and resulting image.
    Dump {
        /// `metadata.log.dir` (or the __cluster_metadata-0 directory inside it).
        dir: PathBuf,
    },
    /// Print each controller's view of the quorum: leader, term, log and applied index.
    Status {
        /// Controller addresses, `host:port[,host:port...]`.
        #[arg(long = "bootstrap-controller", value_name = "HOST:PORT,...")]
        bootstrap_controller: String,
        /// Client security for the controller listener (Kafka's `--command-config`:
        /// `security.protocol`, `ssl.*`, `sasl.mechanism`, `sasl.jaas.config` or
        /// `sasl.username`/`sasl.password`).
        #[arg(long = "command-config", value_name = "PATH")]
        command_config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    // Client commands keep stderr for their own messages; RUST_LOG still turns logs on.
    let default_filter = match command {
        Command::Client(_) => "error",
        _ => "warn,strom=info,strom_raft=info,strom_broker=info,strom_registry=info",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a person at a terminal: a file or a pipe gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    run(command)
}

fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Client(client) => return cli::run(*client),
        Command::Version { output } => {
            let version = env!("CARGO_PKG_VERSION");
            match output {
                cli::OutputFormat::Human => println!("strom {version}"),
                cli::OutputFormat::Json => {
                    println!("{}", serde_json::json!({ "version": version }))
                }
            }
            Ok(())
        }
        Command::Server {
            file,
            overrides,
            add_scram,
        } => server::run(file.as_deref(), &overrides, &add_scram),
        Command::SchemaRegistry { file, overrides } => {
            schema_registry::run(file.as_deref(), &overrides)
        }
        Command::Metadata {
            command: MetadataCommand::Dump { dir },
        } => dump::run(&dir),
        Command::Metadata {
            command:
                MetadataCommand::Status {
                    bootstrap_controller,
                    command_config,
                },
        } => status::run(&bootstrap_controller, command_config.as_deref()),
        Command::Storage {
            command: StorageCommand::RandomUuid,
        } => {
            println!("{}", storage::random_uuid());
            Ok(())
        }
        Command::Storage {
            command:
                StorageCommand::Format {
                    config,
                    overrides,
                    cluster_id,
                    standalone,
                    initial_controllers,
                    no_initial_controllers,
                    ignore_formatted,
                    add_scram,
                },
        } => {
            let initial = match (standalone, initial_controllers, no_initial_controllers) {
                (true, _, _) => storage::InitialVoters::Standalone,
                (_, Some(list), _) => storage::InitialVoters::Listed(list),
                (_, _, true) => storage::InitialVoters::None,
                _ => storage::InitialVoters::Unset,
            };
            add_scram
                .iter()
                .map(|text| scram_bootstrap::parse(text))
                .collect::<anyhow::Result<Vec<_>>>()
                .and_then(|add_scram| {
                    let (config, _) = server::load_config(Some(&config), &overrides)?;
                    storage::format(&config, &cluster_id, &initial, ignore_formatted, &add_scram)
                })
                .map(|lines| {
                    for line in lines {
                        println!("{line}");
                    }
                })
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "strom", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
