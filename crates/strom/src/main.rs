//! The `strom` binary: the broker, its tools and the command line client.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "strom", version, about = "Strom: Kafka-compatible event streaming in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Version => println!("strom {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
