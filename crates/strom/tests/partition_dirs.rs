//! Partition directories at start-up, on the real binary: one whose topic id the metadata
//! does not know is moved aside as `-stray` (WARN with its size), never deleted; a garbage
//! `partition.metadata` keeps the partition offline without touching it; a garbage
//! `strom-log.checkpoint` is reported and the log recovered whole.

mod common;

use std::path::Path;

use common::{broker_overrides, files_under, free_ports, kcat, strom_cli, ServerProcess};

/// `text` without ANSI colour sequences (the log may be coloured).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn consume_all(addr: &str, topic: &str) -> Vec<String> {
    kcat(
        &[
            "-b",
            addr,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%s\n",
        ],
        "",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Starts a broker, creates `topic` with one partition holding `records`, stops it cleanly.
fn broker_with_records(data: &Path, topic: &str, records: &[String]) -> (Vec<String>, String) {
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let overrides = broker_overrides(port, data, &[]);
    let mut server = ServerProcess::start(&overrides, &addr);
    strom_cli(&["topics", "create", topic, "--partitions", "1", "-b", &addr]);
    kcat(
        &["-b", &addr, "-P", "-t", topic, "-X", "acks=all"],
        &(records.join("\n") + "\n"),
    );
    assert!(server.terminate(), "clean exit on SIGTERM");
    (overrides, addr)
}

#[test]
fn a_partition_directory_of_an_unknown_topic_is_moved_aside_not_deleted() {
    let data = tempfile::tempdir().unwrap();
    let records: Vec<String> = (0..500).map(|i| format!("r{i}")).collect();
    let (overrides, addr) = broker_with_records(data.path(), "kept", &records);
    // A copy of the partition under another name, with a topic id no topic has.
    let ghost = data.path().join("ghost-0");
    std::fs::create_dir_all(&ghost).unwrap();
    for (name, bytes) in files_under(&data.path().join("kept-0")) {
        std::fs::write(ghost.join(name), bytes).unwrap();
    }
    let unknown = uuid::Uuid::new_v4();
    std::fs::write(
        ghost.join("partition.metadata"),
        format!("version: 0\ntopic_id: {unknown}\n"),
    )
    .unwrap();
    let before = files_under(&ghost);
    let size: usize = before.values().map(Vec::len).sum();

    let server = ServerProcess::start_logged(&overrides, &addr);
    assert_eq!(consume_all(&addr, "kept"), records);
    let log = plain(&server.log());
    assert!(log.contains("moved aside as a stray"), "{log}");
    assert!(log.contains(&format!("size_bytes={size}")), "{log}");
    assert!(log.contains(&unknown.to_string()), "{log}");
    assert!(!ghost.exists());
    let strays: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("ghost-0.") && name.ends_with("-stray")
        })
        .collect();
    assert_eq!(strays.len(), 1, "{strays:?}");
    assert_eq!(files_under(&strays[0]), before, "the stray's data changed");
}

#[test]
fn garbage_partition_metadata_and_checkpoint_are_reported_and_never_acted_on() {
    let data = tempfile::tempdir().unwrap();
    let records: Vec<String> = (0..500).map(|i| format!("r{i}")).collect();
    let (overrides, addr) = broker_with_records(data.path(), "kept", &records);
    let partition = data.path().join("kept-0");

    // A garbage topic id: the partition stays offline and nothing in it changes.
    let id_file = partition.join("partition.metadata");
    let good_id = std::fs::read(&id_file).unwrap();
    std::fs::write(&id_file, b"version: 0\ntopic_id: \xff\xfe garbage\n").unwrap();
    let before = files_under(&partition);
    // The ready line comes after the first reconcile, which tried to open the partition.
    let mut server = ServerProcess::start_logged(&overrides, &addr);
    assert!(server.terminate(), "clean exit on SIGTERM");
    let log = plain(&server.log());
    assert!(log.contains("cannot open partition log"), "{log}");
    assert!(log.contains(&id_file.display().to_string()), "{log}");
    assert_eq!(files_under(&partition), before, "the partition was changed");
    std::fs::write(&id_file, good_id).unwrap();

    // A garbage checkpoint: reported, then every segment is recovered.
    let checkpoint = partition.join("strom-log.checkpoint");
    assert!(checkpoint.exists());
    std::fs::write(&checkpoint, [0x42u8; 28]).unwrap();
    let server = ServerProcess::start_logged(&overrides, &addr);
    assert_eq!(consume_all(&addr, "kept"), records);
    let log = plain(&server.log());
    assert!(log.contains("damaged log checkpoint ignored"), "{log}");
    assert!(log.contains(&checkpoint.display().to_string()), "{log}");
}
