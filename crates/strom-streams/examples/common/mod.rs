//! Shared by the examples: command-line client properties and running until a signal.

#![allow(dead_code)]

use std::time::Duration;

use strom_streams::{KafkaStreams, StreamsState};

/// Adds `key=value` settings (Kafka Streams or client property names; later ones win).
pub fn set_all(props: &mut strom_client::Properties, settings: &[String]) -> anyhow::Result<()> {
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--config {s:?}: expected key=value"))?;
        props.set(k.trim(), v.trim());
    }
    Ok(())
}

/// Starts the application, prints a `running` line on stdout once it processes (and
/// `rebalancing` / `running` again whenever it goes through a rebalance, so a test can
/// see an instance rejoin), and closes it cleanly on SIGINT or SIGTERM. The lines come
/// from the state listener, which sees every change: a rebalance shorter than any
/// polling interval is still printed.
pub async fn run_until_signal(streams: KafkaStreams, name: &str) -> anyhow::Result<()> {
    let label = name.to_string();
    streams.set_state_listener(move |new, old| match new {
        StreamsState::Running => println!("{label}: running"),
        // Only after it ran: the first line a test waits for is `running`.
        StreamsState::Rebalancing if old == StreamsState::Running => {
            println!("{label}: rebalancing")
        }
        _ => {}
    })?;
    streams.start().await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = streams.wait_until_running(Duration::from_secs(120)) => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if !matches!(
        streams.state(),
        StreamsState::PendingShutdown | StreamsState::NotRunning
    ) {
        // Until a signal, or until a thread fails (the application stops itself).
        let mut watch = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = watch.tick() => {
                    if streams.state() == StreamsState::Error {
                        break;
                    }
                }
            }
        }
    }
    eprintln!("{name}: closing");
    streams.close_with_timeout(Duration::from_secs(30)).await?;
    let m = streams.metrics();
    eprintln!(
        "{name}: closed; processed {} records, restored {}, dropped {} late",
        m.records_processed, m.records_restored, m.records_dropped_late
    );
    Ok(())
}
