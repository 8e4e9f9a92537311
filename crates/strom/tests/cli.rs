//! The `strom` command line client against the real binary as a broker on 127.0.0.1:
//! every subcommand, its JSON output parsed, and its error paths (unknown topic,
//! unreachable broker, invalid config values, usage errors exiting 2).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, ServerProcess};
use serde_json::Value;

/// Longest any one `strom` invocation may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker with its own ports and data directory.
struct Broker {
    _server: ServerProcess,
    addr: String,
    _data: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let data = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let addr = format!("127.0.0.1:{}", ports[0]);
        let overrides = vec![
            format!(
                "listeners=PLAINTEXT://{addr},CONTROLLER://127.0.0.1:{}",
                ports[1]
            ),
            format!("log.dirs={}", data.path().display()),
            "controller.quorum.election.timeout.ms=300".to_string(),
            "num.partitions=3".to_string(),
        ];
        let server = ServerProcess::start(&overrides, &addr);
        Broker {
            _server: server,
            addr,
            _data: data,
        }
    }

    /// `strom ARGS --bootstrap-server ADDR`, expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, "")
    }

    fn ok_in(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(
            out.code, 0,
            "strom {args:?} exited {}; stderr: {}",
            out.code, out.stderr
        );
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut all = args.to_vec();
        all.extend(["--bootstrap-server", &self.addr]);
        strom(&all, stdin)
    }
}

/// Kills a spawned process on drop, so a failing assertion leaves no stray consumer.
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `stdin`, bounded by [`RUN_TIMEOUT`].
fn strom(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .env_remove("STROM_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("strom {args:?} did not finish in {RUN_TIMEOUT:?}");
        }
    };
    writer.join().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Retries `f` until it returns `Some` (bounded): group state settles asynchronously.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not happen in 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn usage_errors_exit_2_without_touching_a_broker() {
    for args in [
        vec!["topics"],
        vec!["consume"],
        vec!["topics", "create", "t", "--partitions", "0"],
        vec!["consume", "t", "--format", "%x"],
        vec!["consume", "t", "--offset", "somewhere"],
        vec!["consume", "t", "--group", "g", "--partition", "0"],
        vec!["produce", "t", "--acks", "2"],
        vec!["produce", "t", "--header", "=v"],
        vec!["groups", "reset-offsets", "--group", "g", "--topic", "t"],
        vec![
            "groups",
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest",
        ],
        vec!["configs", "describe"],
        vec!["configs", "alter", "--topic", "t"],
        vec!["topics", "alter", "t"],
        vec!["completions", "tcsh"],
        vec!["partitions", "reassign"],
        vec![
            "partitions",
            "reassign",
            "--reassignment-json-file",
            "p.json",
            "--verify",
            "--cancel",
        ],
        vec![
            "partitions",
            "elect-leaders",
            "--election-type",
            "preferred",
        ],
        vec![
            "partitions",
            "elect-leaders",
            "--election-type",
            "sideways",
            "--all-topic-partitions",
        ],
    ] {
        let out = strom(&args, "");
        assert_eq!(out.code, 2, "strom {args:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn unreachable_broker_is_explained_and_exits_1() {
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    for args in [
        vec!["topics", "list"],
        vec!["cluster", "describe"],
        vec!["groups", "list"],
    ] {
        let mut all = args.clone();
        all.extend(["--bootstrap-server", &addr, "--request-timeout-ms", "3000"]);
        let out = strom(&all, "");
        assert_eq!(out.code, 1, "strom {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "cannot reach {addr}: connection refused; is the broker running? set --bootstrap-server"
            )),
            "strom {args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn completions_and_the_old_commands_still_work() {
    for shell in ["bash", "zsh", "fish"] {
        let out = strom(&["completions", shell], "");
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("strom"), "{shell}");
        assert!(out.stdout.contains("reset-offsets"), "{shell}");
    }
    let out = strom(&["version"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("strom "), "{}", out.stdout);
    let help = strom(&["topics", "--help"], "");
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("strom topics create orders"),
        "{}",
        help.stdout
    );
}

#[test]
fn topics_lifecycle_with_configs_and_error_paths() {
    let broker = Broker::start();
    assert_eq!(
        broker.ok(&[
            "topics",
            "create",
            "orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=86400000"
        ]),
        "Created topic orders.\n"
    );
    let again = broker.run(&["topics", "create", "orders"], "");
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    broker.ok(&["topics", "create", "orders", "--if-not-exists"]);
    let outcomes = broker.json(&["topics", "create", "orders", "extra", "--if-not-exists"]);
    assert_eq!(outcomes[0]["name"], "orders");
    assert_eq!(outcomes[0]["outcome"], "kept existing");
    assert_eq!(outcomes[1]["outcome"], "created");

    let listed = broker.json(&["topics", "list"]);
    let orders = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(orders["partition_count"], 2);
    assert_eq!(orders["replication_factor"], 1);
    assert!(broker.ok(&["topics", "list"]).contains("orders"));

    let described = broker.json(&["topics", "describe", "orders"]);
    assert_eq!(described[0]["configs"]["retention.ms"], "86400000");
    assert_eq!(described[0]["partitions"][1]["leader"], 1);
    let text = broker.ok(&["topics", "describe", "orders"]);
    assert!(text.contains("PartitionCount: 2"), "{text}");
    assert!(text.contains("Configs: retention.ms=86400000"), "{text}");

    broker.ok(&[
        "topics",
        "alter",
        "orders",
        "--partitions",
        "4",
        "--config",
        "cleanup.policy=compact",
        "--delete-config",
        "retention.ms",
    ]);
    let described = broker.json(&["topics", "describe", "orders"]);
    assert_eq!(described[0]["partition_count"], 4);
    assert_eq!(described[0]["configs"]["cleanup.policy"], "compact");
    assert!(described[0]["configs"].get("retention.ms").is_none());

    for (args, kafka_error) in [
        (
            vec!["topics", "describe", "missing"],
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            vec!["topics", "delete", "missing"],
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            vec!["topics", "create", "bad", "--config", "retention.ms=soon"],
            "INVALID_CONFIG",
        ),
        (
            vec!["topics", "alter", "orders", "--partitions", "2"],
            "INVALID_PARTITIONS",
        ),
    ] {
        let out = broker.run(&args, "");
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(kafka_error), "{args:?}: {}", out.stderr);
    }
    broker.ok(&["topics", "delete", "missing", "--if-exists"]);
    assert_eq!(
        broker.ok(&["topics", "delete", "orders"]),
        "Deleted topic orders.\n"
    );
    let after = broker.json(&["topics", "list"]);
    assert!(!after.to_string().contains("\"orders\""), "{after}");
}

/// `consume --output json` lines as values.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn produce_and_consume_keys_headers_partitions_and_formats() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "events", "--partitions", "3"]);
    let summary = broker.ok_in(
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "flag",
            "--compression",
            "lz4",
            "--output",
            "json",
        ],
        "user-1:first\nuser-2:second\nuser-1:third\n",
    );
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["records"], 3);
    broker.ok_in(
        &["produce", "events", "--partition", "2", "--acks", "1"],
        "plain\n",
    );

    let records = json_lines(&broker.ok(&[
        "consume",
        "events",
        "--from-beginning",
        "--max-messages",
        "4",
        "--output",
        "json",
    ]));
    assert_eq!(records.len(), 4);
    let user_1: Vec<&Value> = records.iter().filter(|r| r["key"] == "user-1").collect();
    assert_eq!(user_1.len(), 2);
    assert_eq!(
        user_1[0]["partition"], user_1[1]["partition"],
        "same key, same partition"
    );
    assert_eq!(user_1[0]["value"], "first");
    assert_eq!(user_1[1]["value"], "third");
    assert_eq!(user_1[0]["headers"][0]["key"], "source");
    assert_eq!(user_1[0]["headers"][0]["value"], "cli");
    assert_eq!(user_1[0]["headers"][1]["value"], Value::Null);
    let plain = records.iter().find(|r| r["value"] == "plain").unwrap();
    assert_eq!(plain["partition"], 2);
    assert_eq!(plain["key"], Value::Null);

    // kcat-like format; one partition from an offset; the idle timeout ends the command.
    let text = broker.ok(&[
        "consume",
        "events",
        "--partition",
        "2",
        "--offset",
        "-1",
        "--timeout-ms",
        "1500",
        "--format",
        "%t|%p|%k|%K|%s|%S|%h\\n",
    ]);
    assert_eq!(text, "events|2||-1|plain|5|\n");

    // s@TIMESTAMP starts at the first record at or after that time (each partition).
    let plain_ms = plain["timestamp"].as_i64().unwrap();
    let since = broker.ok(&[
        "consume",
        "events",
        "--offset",
        &format!("s@{plain_ms}"),
        "--timeout-ms",
        "1500",
        "--format",
        "%s\\n",
    ]);
    assert!(since.contains("plain\n"), "{since}");
    assert!(!since.contains("first"), "{since}");

    // Without --from-beginning a consumer starts at the end: nothing, then the timeout.
    let started = Instant::now();
    assert_eq!(
        broker.ok(&["consume", "events", "--timeout-ms", "1000"]),
        ""
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    for (args, needle) in [
        (
            vec!["consume", "missing", "--timeout-ms", "500"],
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            vec!["consume", "events", "--partition", "9"],
            "has no partition 9",
        ),
    ] {
        let out = broker.run(&args, "");
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let out = broker.run(
        &["produce", "events", "--key-separator", ":"],
        "no-separator\n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("line 1 has no key separator"),
        "{}",
        out.stderr
    );
}

#[test]
fn produce_from_a_file() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "bulk", "--partitions", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.txt");
    let lines: String = (0..2000).map(|i| format!("record-{i}\n")).collect();
    std::fs::write(&path, &lines).unwrap();
    let out = broker.run(
        &[
            "produce",
            "bulk",
            "--file",
            path.to_str().unwrap(),
            "--compression",
            "gzip",
            "--acks",
            "-1",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, "Produced 2000 records to bulk (partition 0: offsets 0-1999).\n",
        "{}",
        out.stderr
    );
    let text = broker.ok(&[
        "consume",
        "bulk",
        "--from-beginning",
        "--max-messages",
        "2000",
        "--quiet",
    ]);
    assert_eq!(text, lines);
    let missing = broker.run(&["produce", "bulk", "--file", "/no/such/file"], "");
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("cannot open /no/such/file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn groups_describe_reset_and_delete() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "jobs", "--partitions", "2"]);
    let input: String = (0..10).map(|i| format!("{i}\n")).collect();
    broker.ok_in(&["produce", "jobs", "--partition", "0"], &input);
    broker.ok_in(&["produce", "jobs", "--partition", "1"], "x\ny\n");

    // A member that reads 6 records commits exactly those (offset 6 in partition 0 or a
    // mix, depending on fetch order): the total lag is 12 - 6.
    let printed = broker.ok(&[
        "consume",
        "jobs",
        "--group",
        "workers",
        "--from-beginning",
        "--max-messages",
        "6",
    ]);
    assert_eq!(printed.lines().count(), 6);
    let rows = eventually("committed offsets", || {
        let rows = broker.json(&["groups", "describe", "workers"]);
        let committed: i64 = rows
            .as_array()?
            .iter()
            .map(|r| r["current_offset"].as_i64().unwrap_or(0))
            .sum();
        (committed == 6).then_some(rows)
    });
    for row in rows.as_array().unwrap() {
        let end = row["log_end_offset"].as_i64().unwrap();
        let current = row["current_offset"].as_i64().unwrap();
        assert_eq!(row["lag"].as_i64().unwrap(), end - current, "{row}");
    }
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["group"] == "workers" && r["topic"] == "jobs" && r["consumer_id"].is_null()));
    let text = broker.ok(&["groups", "describe", "workers"]);
    assert!(text.contains("has no active members"), "{text}");
    assert!(
        text.contains("GROUP    TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID"),
        "{text}"
    );
    let listed = broker.json(&["groups", "list"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "workers" && g["state"] == "Empty"));

    // Dry run by default: the plan is printed, nothing changes.
    let plan = broker.json(&[
        "groups",
        "reset-offsets",
        "--group",
        "workers",
        "--topic",
        "jobs",
        "--to-earliest",
    ]);
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["offsets"].as_array().unwrap().len(), 2);
    assert!(plan["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["new_offset"] == 0));
    let unchanged = broker.json(&["groups", "describe", "workers"]);
    assert_eq!(unchanged, rows);

    broker.ok(&[
        "groups",
        "reset-offsets",
        "--group",
        "workers",
        "--topic",
        "jobs:0",
        "--to-offset",
        "3",
        "--execute",
    ]);
    broker.ok(&[
        "groups",
        "reset-offsets",
        "--group",
        "workers",
        "--topic",
        "jobs:1",
        "--to-latest",
        "--execute",
    ]);
    let after = broker.json(&["groups", "describe", "workers"]);
    let current: Vec<i64> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["current_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(current, vec![3, 2]);
    let shifted = broker.json(&[
        "groups",
        "reset-offsets",
        "--group",
        "workers",
        "--all-topics",
        "--shift-by",
        "-5",
        "--execute",
    ]);
    let news: Vec<i64> = shifted["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["new_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(news, vec![0, 0], "shifts clamp at the log start");
    let future = broker.json(&[
        "groups",
        "reset-offsets",
        "--group",
        "workers",
        "--topic",
        "jobs",
        "--to-datetime",
        "2999-01-01T00:00:00Z",
    ]);
    let news: Vec<i64> = future["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["new_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(
        news,
        vec![10, 2],
        "a time after every record means the log end"
    );

    // The group resumes where the reset put it.
    let resumed = broker.ok(&[
        "consume",
        "jobs",
        "--group",
        "workers",
        "--max-messages",
        "12",
        "--timeout-ms",
        "3000",
        "--format",
        "%p:%o\\n",
    ]);
    assert_eq!(resumed.lines().count(), 12, "{resumed}");

    let missing = broker.run(&["groups", "describe", "nobody"], "");
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("GROUP_ID_NOT_FOUND"),
        "{}",
        missing.stderr
    );
    assert_eq!(
        broker.ok(&["groups", "delete", "workers"]),
        "Deleted group workers.\n"
    );
    let gone = broker.run(&["groups", "describe", "workers"], "");
    assert_eq!(gone.code, 1, "{}", gone.stdout);

    // As in Kafka, resetting a group that does not exist creates its offsets.
    broker.ok(&[
        "groups",
        "reset-offsets",
        "--group",
        "fresh",
        "--topic",
        "jobs",
        "--to-latest",
        "--execute",
    ]);
    let fresh = broker.json(&["groups", "describe", "fresh"]);
    let current: Vec<i64> = fresh
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["current_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(current, vec![10, 2]);

    // delete-offsets (kafka-consumer-groups.sh --delete-offsets): the partitions named only.
    assert_eq!(
        broker.ok(&[
            "groups",
            "delete-offsets",
            "--group",
            "fresh",
            "--topic",
            "jobs:1"
        ]),
        "Deleted the offset of jobs-1.\n"
    );
    let left = broker.json(&["groups", "describe", "fresh"]);
    let committed: Vec<(i64, i64)> = left
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["partition"].as_i64()?, r["current_offset"].as_i64()?)))
        .collect();
    assert_eq!(committed, vec![(0, 10)], "{left}");
}

#[test]
fn groups_with_an_active_member_show_it_and_refuse_resets() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "live", "--partitions", "2"]);
    let mut member = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "consume",
            "live",
            "--group",
            "busy",
            "--timeout-ms",
            "20000",
            "--bootstrap-server",
            &broker.addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _reaper = Reaper(member.id());
    let rows = eventually("an assigned member", || {
        let out = broker.run(&["groups", "describe", "busy", "--output", "json"], "");
        let rows: Value = serde_json::from_str(&out.stdout).ok()?;
        let owned = rows
            .as_array()?
            .iter()
            .filter(|r| r["consumer_id"].is_string())
            .count();
        (owned == 2).then_some(rows)
    });
    assert_eq!(rows[0]["client_id"], "strom-cli");
    assert!(rows[0]["current_offset"].is_null());
    let members = broker.json(&["groups", "describe", "busy", "--members"]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["assignment"].as_array().unwrap().len(), 2);
    let state = broker.json(&["groups", "describe", "busy", "--state"]);
    assert_eq!(state[0]["state"], "Stable");
    let refused = broker.run(
        &[
            "groups",
            "reset-offsets",
            "--group",
            "busy",
            "--topic",
            "live",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("inactive"), "{}", refused.stderr);
    let deleted = broker.run(&["groups", "delete", "busy"], "");
    assert_eq!(deleted.code, 1);
    assert!(
        deleted.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        deleted.stderr
    );

    // Ctrl-C (SIGINT) ends the member cleanly: exit 0, positions committed, group left.
    Command::new("kill")
        .args(["-INT", &member.id().to_string()])
        .status()
        .unwrap();
    let status = eventually("the member to exit", || member.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    let state = broker.json(&["groups", "describe", "busy", "--state"]);
    assert_eq!(state[0]["state"], "Empty");
    let rows = broker.json(&["groups", "describe", "busy"]);
    let current: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["current_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(current, vec![0, 0]);
    broker.ok(&[
        "groups",
        "reset-offsets",
        "--group",
        "busy",
        "--topic",
        "live",
        "--to-earliest",
        "--execute",
    ]);
}

#[test]
fn configs_and_cluster() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "conf", "--partitions", "1"]);
    assert!(broker
        .ok(&["configs", "describe", "--topic", "conf"])
        .contains("No configs set on topic conf"));
    assert_eq!(
        broker.ok(&[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--set",
            "retention.ms=3600000",
            "--set",
            "max.message.bytes=2000000"
        ]),
        "Completed updating config for topic conf.\n"
    );
    let set = broker.json(&["configs", "describe", "--topic", "conf"]);
    let names: Vec<&str> = set
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["max.message.bytes", "retention.ms"]);
    assert_eq!(set[1]["value"], "3600000");
    assert_eq!(set[1]["source"], "DYNAMIC_TOPIC_CONFIG");
    broker.ok(&[
        "configs",
        "alter",
        "--topic",
        "conf",
        "--delete",
        "retention.ms",
    ]);
    let all = broker.json(&["configs", "describe", "--topic", "conf", "--all"]);
    let retention = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "retention.ms")
        .unwrap();
    assert_eq!(retention["source"], "DEFAULT_CONFIG");
    let bad = broker.run(
        &[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--set",
            "retention.ms=forever",
        ],
        "",
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("INVALID_CONFIG"), "{}", bad.stderr);
    let broker_configs = broker.json(&["configs", "describe", "--broker", "1", "--all"]);
    assert!(broker_configs
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "num.partitions" && e["value"] == "3"));

    let cluster = broker.json(&["cluster", "describe"]);
    assert_eq!(cluster["controller_id"], 1);
    assert_eq!(cluster["brokers"][0]["id"], 1);
    assert_eq!(
        format!("127.0.0.1:{}", cluster["brokers"][0]["port"]),
        broker.addr
    );
    assert!(broker.ok(&["cluster", "describe"]).contains("Cluster ID: "));
}

#[test]
fn bootstrap_from_the_environment_and_a_closed_stdout() {
    let broker = Broker::start();
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["topics", "create", "env-topic", "--partitions", "1"])
        .env("STROM_BOOTSTRAP", &broker.addr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let input: String = (0..50_000).map(|i| format!("{i}\n")).collect();
    broker.ok_in(&["produce", "env-topic"], &input);
    // `strom consume | head -1`: the reader goes away; strom ends quietly with 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "consume",
            "env-topic",
            "--from-beginning",
            "--timeout-ms",
            "5000",
            "--bootstrap-server",
            &broker.addr,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).unwrap();
    assert_eq!(first, "0\n");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn partitions_reassign_verify_cancel_and_elect_leaders_on_one_broker() {
    let broker = Broker::start();
    broker.ok(&["topics", "create", "moves", "--partitions", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let write = |replicas: &str| {
        std::fs::write(
            &plan,
            format!(
                r#"{{"version":1,"partitions":[{{"topic":"moves","partition":0,"replicas":{replicas},"log_dirs":["any"]}}]}}"#
            ),
        )
        .unwrap();
    };
    let path = plan.to_str().unwrap();
    // Onto the broker it is already on: nothing to move, and verified at once.
    write("[1]");
    let out = broker.ok(&[
        "partitions",
        "reassign",
        "--reassignment-json-file",
        path,
        "--wait",
    ]);
    assert!(
        out.contains("Current partition replica assignment"),
        "{out}"
    );
    assert!(out.contains(r#""replicas":[1]"#), "{out}");
    assert!(
        out.contains("Reassignment of partition moves-0 is completed."),
        "{out}"
    );
    let verified = broker.json(&[
        "partitions",
        "reassign",
        "--reassignment-json-file",
        path,
        "--verify",
    ]);
    assert_eq!(verified[0]["state"], "completed", "{verified}");
    // Onto a broker that does not exist: Kafka's error, exit 1, nothing changed.
    write("[7]");
    let bad = broker.run(
        &["partitions", "reassign", "--reassignment-json-file", path],
        "",
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stdout.contains("INVALID_REPLICA_ASSIGNMENT"),
        "{}",
        bad.stdout
    );
    let unverified = broker.run(
        &[
            "partitions",
            "reassign",
            "--reassignment-json-file",
            path,
            "--verify",
        ],
        "",
    );
    assert_eq!(unverified.code, 1);
    assert!(
        unverified.stdout.contains("rather than [7]"),
        "{}",
        unverified.stdout
    );
    // Nothing is moving, so there is nothing to cancel (not an error).
    let out = broker.ok(&[
        "partitions",
        "reassign",
        "--reassignment-json-file",
        path,
        "--cancel",
    ]);
    assert!(out.contains("Successfully cancelled"), "{out}");
    // A plan that is not Kafka's JSON is refused before anything is sent.
    std::fs::write(&plan, "{\"partitions\": 3}").unwrap();
    let bad = broker.run(
        &["partitions", "reassign", "--reassignment-json-file", path],
        "",
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("not valid JSON of the expected shape"),
        "{}",
        bad.stderr
    );
    // Decommissioning the only broker has nowhere to go.
    let nowhere = broker.run(
        &[
            "partitions",
            "reassign",
            "--generate",
            "--exclude-broker",
            "1",
        ],
        "",
    );
    assert_eq!(nowhere.code, 1);
    assert!(
        nowhere.stderr.contains("no broker is left"),
        "{}",
        nowhere.stderr
    );
    // Every leader is already the preferred replica.
    let out = broker.ok(&[
        "partitions",
        "elect-leaders",
        "--election-type",
        "preferred",
        "--topic",
        "moves",
    ]);
    assert!(
        out.contains("Valid replica already elected for partitions moves-0, moves-1"),
        "{out}"
    );
    let elected = broker.json(&[
        "partitions",
        "elect-leaders",
        "--election-type",
        "unclean",
        "--all-topic-partitions",
    ]);
    assert_eq!(
        elected,
        serde_json::json!([]),
        "all partitions have leaders: none is named"
    );
}
