//! The broker on a real full disk (a small tmpfs as its log dir; mounting needs root, as the
//! tests have in CI: a failed mount fails the test). A partition whose log cannot even be
//! created while the disk is full comes online by itself once space is freed, with no other
//! metadata change to prompt it; appends to a full partition answer KAFKA_STORAGE_ERROR and
//! resume after.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{batch, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_records::Compression;

const LIMIT: Duration = Duration::from_secs(30);
const KAFKA_STORAGE_ERROR: i16 = 56;

/// A tmpfs mounted on a temporary directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "cannot mount a tmpfs on {} (these tests need root, as in CI): {}",
            dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![0xaa_u8; 4096];
        for _ in 0..1_000_000 {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

async fn create_topic(client: &mut Client, topic: &str) -> i16 {
    let response = client
        .send(
            7,
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(-1)]),
        )
        .await;
    response.topics[0].error_code
}

async fn produce(client: &mut Client, topic: &str, first: usize) -> (i16, i64) {
    let response = client
        .send(
            9,
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(
                            first,
                            50,
                            Compression::None,
                        ))))])]),
        )
        .await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_and_appends_come_back_once_space_is_freed() {
    let tmpfs = Tmpfs::mount("4m");
    let data = tmpfs.path().join("data");
    let broker = TestBroker::start_with(|c| c.log_dirs = vec![data.clone()]).await;
    let mut client = broker.client().await;
    assert_eq!(create_topic(&mut client, "early").await, 0);
    let filler = tmpfs.fill();

    // The existing partition: appends fail with KAFKA_STORAGE_ERROR (once its last page
    // is used up), and keep failing while the disk is full.
    let mut refused = false;
    for i in 0..2000 {
        let (code, _) = produce(&mut client, "early", i * 50).await;
        if code == KAFKA_STORAGE_ERROR {
            refused = true;
            break;
        }
        assert_eq!(code, 0);
    }
    assert!(refused, "the full disk refuses appends");
    // A new partition's directory cannot be created: the partition stays offline.
    create_topic(&mut client, "late").await;
    let replicas = &broker.broker.context().replicas;
    assert!(
        replicas.has_offline(),
        "the new partition's log could not open"
    );
    let (code, _) = produce(&mut client, "late", 0).await;
    assert_ne!(code, 0);

    std::fs::remove_file(filler).unwrap();
    // No metadata changes from here on: the broker tries the partition again by itself.
    let start = Instant::now();
    let mut late = None;
    while late.is_none() {
        let (code, offset) = produce(&mut client, "late", 0).await;
        if code == 0 {
            late = Some(offset);
        }
        assert!(
            start.elapsed() < LIMIT,
            "the new partition stayed offline: {code}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(late, Some(0));
    assert!(!replicas.has_offline());
    let start = Instant::now();
    loop {
        let (code, _) = produce(&mut client, "early", 100_000).await;
        if code == 0 {
            break;
        }
        assert_eq!(code, KAFKA_STORAGE_ERROR);
        assert!(start.elapsed() < LIMIT, "appends did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
