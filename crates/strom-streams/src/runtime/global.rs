//! Global tables: one consumer per instance reads every partition of each global topic
//! into its store (from the beginning, on every start: the topic is the changelog); start
//! waits until the stores are caught up, then the global task keeps them current.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use strom_client::{Admin, Consumer, OffsetSpec, TopicPartition};

use super::Shared;
use crate::error::Result;
use crate::state::{lock, StoreCell};

pub(crate) struct GlobalRunner {
    consumer: Consumer,
    cells: HashMap<String, StoreCell>,
}

impl GlobalRunner {
    /// Assigns every global partition and restores the stores to the current end.
    pub(crate) async fn bootstrap(shared: &Shared, admin: &Admin) -> Result<Option<GlobalRunner>> {
        if shared.topology.globals.is_empty() {
            return Ok(None);
        }
        let mut cells = HashMap::new();
        let mut partitions = Vec::new();
        for g in &shared.topology.globals {
            if let Some(cell) = shared.globals.get(&g.store) {
                cells.insert(g.topic.clone(), cell.clone());
            }
            partitions.extend(admin.partitions_of(&g.topic).await?);
        }
        let mut consumer = Consumer::new(shared.config.restore_consumer()?)?;
        consumer.assign(partitions.clone()).await?;
        consumer.seek_to_beginning(&partitions).await?;
        let ends: BTreeMap<TopicPartition, i64> = admin
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect();
        let mut runner = GlobalRunner { consumer, cells };
        loop {
            let behind = ends
                .iter()
                .any(|(tp, end)| runner.consumer.position(tp).is_none_or(|p| p < *end));
            if !behind {
                break;
            }
            if shared.stopping() {
                break;
            }
            runner.step(Duration::from_millis(100)).await?;
        }
        tracing::info!(partitions = partitions.len(), "global stores restored");
        Ok(Some(runner))
    }

    async fn step(&mut self, wait: Duration) -> Result<()> {
        for r in self.consumer.poll(wait).await? {
            let Some(cell) = self.cells.get(&r.topic) else {
                continue;
            };
            if let Some(k) = r.key {
                lock(cell)?.restore(k, r.value)?;
            }
        }
        Ok(())
    }

    /// Keeps the stores current until shutdown.
    pub(crate) async fn run(mut self, shared: Arc<Shared>) -> Result<()> {
        while !shared.stopping() {
            self.step(Duration::from_millis(shared.config.poll_ms))
                .await?;
        }
        let _ = self.consumer.close().await;
        Ok(())
    }
}
