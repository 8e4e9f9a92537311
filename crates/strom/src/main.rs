//! The `strom` binary: the broker, its tools and the command line client.

mod dump;
mod properties;
mod server;
mod server_config;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "Strom: Kafka-compatible event streaming in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
    /// Run a server node from a Java-properties file (Kafka's server.properties keys).
    Server {
        /// The properties file; without it, defaults (a single node: broker on
        /// 127.0.0.1:9092, controller on 127.0.0.1:9093, data in ./data).
        file: Option<PathBuf>,
        /// Set a key, overriding the file: `--override key=value` (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Metadata tools.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
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
    },
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,strom=info,strom_raft=info,strom_broker=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Version => println!("strom {}", env!("CARGO_PKG_VERSION")),
        Command::Server { file, overrides } => server::run(file.as_deref(), &overrides)?,
        Command::Metadata {
            command: MetadataCommand::Dump { dir },
        } => dump::run(&dir)?,
        Command::Metadata {
            command: MetadataCommand::Status {
                bootstrap_controller,
            },
        } => status::run(&bootstrap_controller)?,
    }
    Ok(())
}
