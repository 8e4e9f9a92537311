//! The command line client: `strom topics|produce|consume|groups|configs|cluster|partitions|streams|delegation-tokens`
//! on top of strom-client, and `strom schemas` on top of strom-registry's REST client. Each
//! command parses its flags (args), talks to the cluster through one
//! tokio runtime that lives only for the command, and prints through the output layer.

mod acls;
mod args;
mod cluster;
mod configs;
mod consume;
mod errors;
mod features;
mod format;
mod groups;
mod lines;
mod log_dirs;
mod output;
mod parse;
mod partitions;
mod produce;
mod progress;
mod quorum;
mod quotas;
mod reset;
mod schemas;
mod share_groups;
mod streams;
mod tokens;
mod topics;
mod transactions;

use std::process::ExitCode;

pub use args::ClientCommand;
use args::Common;
pub use output::OutputFormat;
use strom_client::{ClientConfig, Properties};

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
        ClientCommand::Transactions(args) => transactions::run(&args.common, args.command).await,
        ClientCommand::Configs(args) => configs::run(&args.common, args.command).await,
        ClientCommand::Cluster(args) => cluster::run(&args.common, args.command).await,
        ClientCommand::Acls(args) => acls::run(&args.common, args.command).await,
        ClientCommand::Quotas(args) => quotas::run(&args.common, args.command).await,
        ClientCommand::DelegationTokens(args) => tokens::run(&args.common, args.command).await,
        ClientCommand::MetadataQuorum(args) => quorum::run(&args.common, args.command).await,
        ClientCommand::Features(args) => features::run(&args.common, args.command).await,
        ClientCommand::Partitions(args) => partitions::run(&args.common, args.command).await,
        ClientCommand::LogDirs(args) => log_dirs::run(&args.common, args.command).await,
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
        ClientCommand::Transactions(args) => &args.common,
        ClientCommand::Configs(args) => &args.common,
        ClientCommand::Cluster(args) => &args.common,
        ClientCommand::Acls(args) => &args.common,
        ClientCommand::Quotas(args) => &args.common,
        ClientCommand::DelegationTokens(args) => &args.common,
        ClientCommand::MetadataQuorum(args) => &args.common,
        ClientCommand::Features(args) => &args.common,
        ClientCommand::Partitions(args) => &args.common,
        ClientCommand::LogDirs(args) => &args.common,
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

/// The client properties of `--command-config` and `-X` (the latter win).
fn client_properties(common: &Common) -> anyhow::Result<Properties> {
    let mut props = match &common.command_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read --command-config {}: {e}", path.display())
            })?;
            Properties::parse(&text)
                .map_err(|e| anyhow::anyhow!("--command-config {}: {e}", path.display()))?
        }
        None => Properties::new(),
    };
    for (key, value) in &common.property {
        props.set(key.trim(), value.trim());
    }
    // The address comes from --bootstrap-server (or STROM_BOOTSTRAP, or its default).
    props.set("bootstrap.servers", common.bootstrap_server.clone());
    if let Some(ms) = common.request_timeout_ms {
        props.set("request.timeout.ms", ms.to_string());
    }
    if !props.contains("client.id") {
        props.set("client.id", "strom-cli");
    }
    // One timeout for a request and a whole call, as before properties existed.
    let timeout = props
        .get("request.timeout.ms")
        .unwrap_or("30000")
        .to_string();
    if !props.contains("default.api.timeout.ms") {
        props.set("default.api.timeout.ms", timeout.clone());
    }
    props.set("request.timeout.ms", timeout);
    Ok(props)
}

/// The client settings every command shares (client keys of the properties; the others
/// are for the producer or consumer, and admin commands leave them unused).
fn client_config(common: &Common) -> anyhow::Result<ClientConfig> {
    let mut props = client_properties(common)?;
    Ok(ClientConfig::from_properties(&mut props)?)
}

/// Says which properties no part of the command used (typos, or another client's keys).
fn warn_unused(props: &Properties) {
    for key in props.unused() {
        eprintln!("strom: warning: client property {key} is not used by this command");
    }
}
