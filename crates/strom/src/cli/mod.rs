//! The command line client: `strom topics|produce|consume|groups|configs|cluster|streams`
//! on top of strom-client, and `strom schemas` on top of strom-registry's REST client. Each
//! command parses its flags (args), talks to the cluster through one
//! tokio runtime that lives only for the command, and prints through the output layer.

mod args;
mod cluster;
mod configs;
mod consume;
mod errors;
mod format;
mod groups;
mod lines;
mod output;
mod parse;
mod produce;
mod progress;
mod reset;
mod schemas;
mod streams;
mod topics;

use std::process::ExitCode;

pub use args::ClientCommand;
use args::Common;
use strom_client::ClientConfig;

/// Runs one client command to its exit code (errors printed on stderr).
pub fn run(command: ClientCommand) -> ExitCode {
    let bootstrap = common(&command).bootstrap_server.clone();
    // Fail fast and clearly, rather than after the client's retries run out (`schemas`
    // talks to the registry only).
    let needs_broker = !matches!(command, ClientCommand::Schemas(_));
    if let Some(reason) = needs_broker.then(|| errors::probe(&bootstrap)).flatten() {
        eprintln!("strom: error: {}", errors::unreachable(&bootstrap, &reason));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("strom: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(command));
    // The client's background tasks (heartbeats, fetches) end with the runtime, not later.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    errors::exit(result, &bootstrap)
}

async fn dispatch(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Topics(args) => topics::run(&args.common, args.command).await,
        ClientCommand::Produce(args) => produce::run(args).await,
        ClientCommand::Consume(args) => consume::run(args).await,
        ClientCommand::Groups(args) => groups::run(&args.common, args.command).await,
        ClientCommand::Configs(args) => configs::run(&args.common, args.command).await,
        ClientCommand::Cluster(args) => cluster::run(&args.common, args.command).await,
        ClientCommand::Schemas(args) => schemas::run(args).await,
        ClientCommand::Streams(args) => streams::run(&args.common, args.command).await,
    }
}

fn common(command: &ClientCommand) -> &Common {
    match command {
        ClientCommand::Topics(args) => &args.common,
        ClientCommand::Produce(args) => &args.common,
        ClientCommand::Consume(args) => &args.common,
        ClientCommand::Groups(args) => &args.common,
        ClientCommand::Configs(args) => &args.common,
        ClientCommand::Cluster(args) => &args.common,
        ClientCommand::Schemas(args) => &args.common,
        ClientCommand::Streams(args) => &args.common,
    }
}

/// After a first Ctrl-C a command winds down (flush, commit, leave the group); a second
/// one ends the process at once, as a person pressing it twice expects.
fn exit_on_second_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("strom: interrupted");
            std::process::exit(130);
        }
    });
}

/// The client settings every command shares.
fn client_config(common: &Common) -> ClientConfig {
    let mut config = ClientConfig::new(&common.bootstrap_server);
    config.client_id = "strom-cli".to_string();
    config.request_timeout_ms = common.request_timeout_ms;
    config.default_api_timeout_ms = common.request_timeout_ms;
    config
}
