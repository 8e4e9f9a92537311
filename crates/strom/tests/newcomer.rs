//! What a newcomer trips on, run as processes: start-up errors that name the path or
//! address and the key (and leave nothing behind), `metadata dump` of a wrong directory,
//! client properties on the command line (a 2 MB record), and logs without colour codes
//! when they go to a file.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_ports, start_expecting_exit, ServerProcess};

/// Longest any one command may run.
const LIMIT: Duration = Duration::from_secs(60);

fn overrides(ports: &[u16], data: &Path, extra: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            ports[0], ports[1]
        ),
        format!("log.dirs={}", data.display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
    ];
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn invalid_numbers_name_the_key_and_the_allowed_values() {
    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    // One format for every key, the quorum's and the broker's alike:
    // `config KEY: invalid value "VALUE": ALLOWED`.
    for (key, value, allowed) in [
        ("node.id", "-1", "must be an integer >= 0"),
        ("node.id", "abc", "must be an integer from 0 to 2147483647"),
        ("num.partitions", "0", "must be an integer >= 1"),
        (
            "controller.quorum.election.timeout.ms",
            "-5",
            "must be an integer >= 50",
        ),
        // A key only the broker reads: the same format.
        ("message.max.bytes", "abc", "must be an integer"),
        ("quota.window.num", "4000", "must be an integer <= 3600"),
        ("delete.topic.enable", "yes", "must be true or false"),
        (
            "process.roles",
            "broker,teapot",
            "must be one or more of broker, controller, comma-separated",
        ),
    ] {
        let setting = format!("{key}={value}");
        let (ok, stderr) =
            start_expecting_exit(&overrides(&ports, data.path(), &[&setting]), LIMIT);
        assert!(!ok, "{setting} was accepted");
        assert!(
            stderr.contains(&format!("config {key}: invalid value {value:?}: {allowed}")),
            "{setting}: {stderr}"
        );
        assert!(!stderr.contains("invalid digit"), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[test]
fn a_properties_file_and_an_override_go_through_the_one_parser() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("server.properties");
    std::fs::write(&file, "# a newcomer's typo\nnode.id = -1\n").unwrap();
    let strom = env!("CARGO_BIN_EXE_strom");
    let run = |args: &[&str]| {
        let out = Command::new("timeout")
            .arg("60")
            .arg(strom)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let expected = r#"strom: error: config node.id: invalid value "-1": must be an integer >= 0"#;
    let file = file.display().to_string();
    let from_file = run(&["server", &file]);
    assert!(from_file.contains(expected), "{from_file}");
    let from_override = run(&["server", &file, "--override", "node.id=-1"]);
    assert!(from_override.contains(expected), "{from_override}");
    // `strom storage format` reads the configuration the same way.
    let from_format = run(&["storage", "format", "--config", &file, "--cluster-id", "x"]);
    assert!(from_format.contains(expected), "{from_format}");
}

#[test]
fn lower_case_listener_names_are_kafkas_upper_case_names() {
    // Kafka's ListenerName.normalised: `controller://` is the listener CONTROLLER wherever it
    // is named, in listeners, controller.listener.names and the protocol map alike.
    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let overrides = vec![
        format!(
            "listeners=plaintext://127.0.0.1:{},controller://127.0.0.1:{}",
            ports[0], ports[1]
        ),
        "controller.listener.names=controller".to_string(),
        "listener.security.protocol.map=plaintext:PLAINTEXT,Controller:PLAINTEXT".to_string(),
        "inter.broker.listener.name=Plaintext".to_string(),
        format!("log.dirs={}", data.path().display()),
        "controller.quorum.election.timeout.ms=300".to_string(),
    ];
    let addr = format!("127.0.0.1:{}", ports[0]);
    let mut server = ServerProcess::start(&overrides, &addr);
    // A client nobody here wrote sees one broker on the broker listener.
    let metadata = common::kcat(&["-b", &addr, "-L", "-m", "30"], "");
    assert!(
        metadata.contains(&format!("broker 1 at 127.0.0.1:{}", ports[0])),
        "{metadata}"
    );
    assert!(server.terminate());
}

#[test]
fn log_dirs_that_is_a_file_is_named_with_its_key() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("data");
    std::fs::write(&file, b"not a directory").unwrap();
    let (ok, stderr) = start_expecting_exit(&overrides(&free_ports(2), &file, &[]), LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "log.dirs names {}, which is a file, not a directory",
            file.display()
        )) && stderr.contains("or set log.dirs to another directory"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    // A directory below a file: the OS says "Not a directory"; the message says which.
    let below = file.join("data");
    let (ok, stderr) = start_expecting_exit(&overrides(&free_ports(2), &below, &[]), LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("cannot create {} (log.dirs)", below.display())),
        "{stderr}"
    );
}

/// `strom server` as a user without write access to the directories (root is not stopped
/// by permissions, so as root the test runs the server as `nobody`).
fn start_unprivileged(overrides: &[String]) -> Output {
    let strom = env!("CARGO_BIN_EXE_strom");
    let root = Command::new("id").arg("-u").output().unwrap();
    let mut command = if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", strom]);
        command
    } else {
        Command::new(strom)
    };
    command.arg("server");
    for o in overrides {
        command.arg("--override").arg(o);
    }
    let output = Command::new("timeout")
        .arg("60")
        .args(std::iter::once(command.get_program()).chain(command.get_args()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    output
}

#[test]
fn unwritable_data_dirs_are_named_with_their_key_and_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A parent the server may not create in, and an existing directory it may not write in.
    let locked = root.path().join("locked");
    let read_only = root.path().join("read-only");
    for dir in [&locked, &read_only] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let data = locked.join("data");
    let output = start_unprivileged(&overrides(&free_ports(2), &data, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot create {} (log.dirs)", data.display()))
            && stderr.contains("Permission denied")
            && stderr.contains("give the user running strom write access"),
        "{stderr}"
    );
    let output = start_unprivileged(&overrides(
        &free_ports(2),
        &root.path().join("elsewhere"),
        &[&format!("metadata.log.dir={}", read_only.display())],
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot write in {} (metadata.log.dir)",
            read_only.display()
        )) && stderr.contains("or set metadata.log.dir to another directory"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&read_only).unwrap().count(), 0);
    assert!(!data.exists());
}

#[test]
fn a_port_in_use_is_named_once_and_nothing_is_created() {
    // A first node, as a person would start it, and a second one on the same ports.
    let first_data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let _first = ServerProcess::start(
        &overrides(&ports, first_data.path(), &[]),
        &format!("127.0.0.1:{}", ports[0]),
    );
    let second = tempfile::tempdir().unwrap();
    let data = second.path().join("data");
    let (ok, stderr) = start_expecting_exit(&overrides(&ports, &data, &[]), LIMIT);
    assert!(!ok);
    let addr = format!("127.0.0.1:{}", ports[0]);
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} (listener PLAINTEXT in listeners)"
        )) && stderr.contains("stop it, or give this node other ports in listeners"),
        "{stderr}"
    );
    assert_eq!(count(&stderr, "Address already in use"), 1, "{stderr}");
    assert!(!data.exists(), "a half-created {}", data.display());

    // The controller's port alone in use.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let controller = taken.local_addr().unwrap().port();
    let ports = [free_ports(1)[0], controller];
    let (ok, stderr) = start_expecting_exit(&overrides(&ports, &data, &[]), LIMIT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{controller} (listener CONTROLLER in listeners)"
        )),
        "{stderr}"
    );
    assert_eq!(count(&stderr, "Address already in use"), 1, "{stderr}");
    assert!(!data.exists(), "a half-created {}", data.display());
}

#[test]
fn metadata_dump_of_a_dir_without_a_metadata_log_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["metadata", "dump"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(&format!("{} holds no metadata log", dir.path().display())),
        "{stderr}"
    );
    // A real node's dir still dumps.
    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let mut server = ServerProcess::start(
        &overrides(&ports, data.path(), &[]),
        &format!("127.0.0.1:{}", ports[0]),
    );
    assert!(server.terminate());
    let output = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["metadata", "dump"])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("\nimage:\n"), "{stdout}");
    assert!(stdout.contains("broker 1 epoch"), "{stdout}");
}

/// Runs the CLI with `stdin`, bounded by `timeout 60`. A leading `--bootstrap-server ADDR`
/// is moved to the end (global options follow the subcommand's name).
fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut args = args.to_vec();
    if args.first() == Some(&"--bootstrap-server") {
        args.rotate_left(2);
    }
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_strom"))
        .args(&args)
        .env_remove("STROM_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

#[test]
fn a_2mb_record_goes_through_with_client_properties() {
    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let _server = ServerProcess::start(&overrides(&ports, data.path(), &[]), &addr);
    let b = ["--bootstrap-server", addr.as_str()];
    let create = cli(
        &[
            &b[..],
            &[
                "topics",
                "create",
                "big",
                "--config",
                "max.message.bytes=4194304",
            ],
        ]
        .concat(),
        b"",
    );
    assert!(create.status.success(), "{create:?}");
    let mut line = vec![b'x'; 2 * 1024 * 1024];
    line.push(b'\n');

    // Without properties the producer refuses it, naming the key to raise.
    let plain = cli(
        &[&b[..], &["produce", "big", "--max-line-bytes", "4194304"]].concat(),
        &line,
    );
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("max.request.size"), "{stderr}");

    // Kafka's --producer-property, kcat's -X, and Kafka's --command-config.
    let config = data.path().join("client.properties");
    std::fs::write(&config, "# a client config\nmax.request.size=4194304\n").unwrap();
    let config = config.display().to_string();
    for properties in [
        vec!["--producer-property", "max.request.size=4194304"],
        vec!["-X", "max.request.size=4194304"],
        vec!["--command-config", config.as_str()],
    ] {
        let args = [
            &b[..],
            &[
                "produce",
                "big",
                "--max-line-bytes",
                "4194304",
                "--output",
                "json",
            ],
            &properties[..],
        ]
        .concat();
        let out = cli(&args, &line);
        assert!(
            out.status.success(),
            "{properties:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["records"], 1, "{summary}");
    }
    // Read back: three records of exactly 2 MiB (a consumer property passes too).
    let out = cli(
        &[
            &b[..],
            &[
                "consume",
                "big",
                "--from-beginning",
                "--max-messages",
                "3",
                "--format",
                "%S\\n",
                "--consumer-property",
                "fetch.max.wait.ms=100",
            ],
        ]
        .concat(),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "2097152\n2097152\n2097152\n");

    // A property no part of the command uses is a warning; a bad value is an error.
    let out = cli(
        &[&b[..], &["produce", "big", "-X", "max.requets.size=1"]].concat(),
        b"small\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("client property max.requets.size is not used"),
        "{stderr}"
    );
    let out = cli(
        &[&b[..], &["produce", "big", "-X", "linger.ms=soon"]].concat(),
        b"small\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("linger.ms"), "{stderr}");
}

#[test]
fn version_takes_output_json() {
    let out = cli(&["version", "--output", "json"], b"");
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

/// Runs `strom server` with its stderr in `log_path` until its ready line, then stops it
/// with SIGTERM; returns whether it exited 0.
fn run_logged(ports: &[u16], data: &Path, log_path: &Path, between: impl FnOnce()) -> bool {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command.arg("server");
    for o in overrides(ports, data, &[]) {
        command.arg("--override").arg(o);
    }
    let mut child = command
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first);
        let _ = tx.send(first);
    });
    let ready = rx.recv_timeout(LIMIT);
    if ready.as_ref().is_ok_and(|line| line.contains(" ready: ")) {
        between();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let ready = ready.unwrap();
    assert!(ready.contains(" ready: "), "{ready}");
    status.success()
}

#[test]
fn logs_to_a_file_have_no_colour_codes_and_no_line_per_partition() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let ports = free_ports(2);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let b = ["--bootstrap-server", addr.as_str()];
    // A first run makes partitions: a topic of 8, and __consumer_offsets' 50 by a group.
    let first = root.path().join("first.log");
    assert!(run_logged(&ports, &data, &first, || {
        let out = cli(
            &[&b[..], &["topics", "create", "t", "--partitions", "8"]].concat(),
            b"",
        );
        assert!(out.status.success(), "{out:?}");
        let out = cli(&[&b[..], &["produce", "t"]].concat(), b"a\n");
        assert!(out.status.success(), "{out:?}");
        let consume = [
            "consume",
            "t",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "1",
        ];
        let out = cli(&[&b[..], &consume[..]].concat(), b"");
        assert!(out.status.success(), "{out:?}");
    }));
    // The restart opens them all and loads the group coordinators; the stop closes them.
    let second = root.path().join("second.log");
    assert!(run_logged(&ports, &data, &second, || {
        // Stop only once every coordinator is loaded (bounded wait on the log).
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&second)
            .unwrap_or_default()
            .contains("group coordinators loaded")
        {
            assert!(
                started.elapsed() < LIMIT,
                "the group coordinators never loaded"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    let log = std::fs::read_to_string(&second).unwrap();
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
    for per_partition in [
        "opened log",
        "closed log cleanly",
        "group coordinator loaded",
    ] {
        assert!(!log.contains(per_partition), "{per_partition}: {log}");
    }
    assert_eq!(
        count(
            &log,
            "group coordinators loaded for every __consumer_offsets partition"
        ),
        1,
        "{log}"
    );
    assert!(count(&log, "no longer leading") <= 1, "{log}");
}

#[test]
fn results_go_to_stdout_and_everything_else_to_stderr() {
    let data = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let addr = format!("127.0.0.1:{}", ports[0]);
    let _server = ServerProcess::start(&overrides(&ports, data.path(), &[]), &addr);
    let b = ["--bootstrap-server", addr.as_str()];
    let run = |args: &[&str], stdin: &[u8]| {
        let out = cli(&[&b[..], args].concat(), stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = run(&["topics", "create", "t", "--partitions", "1"], b"");
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("Created topic t.\n", "")
    );
    let (stdout, stderr) = run(&["produce", "t"], b"a\nb\n");
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("Produced 2 records to t (partition 0: offsets 0-1).\n", "")
    );
    let (stdout, stderr) = run(&["produce", "t", "--output", "json"], b"c\n");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["records"], 1);
    assert_eq!(stderr, "");
    let consume = ["consume", "t", "--from-beginning", "--max-messages", "3"];
    let (stdout, stderr) = run(&consume, b"");
    assert_eq!(stdout, "a\nb\nc\n");
    assert_eq!(stderr, "Processed a total of 3 messages\n");
    let (stdout, stderr) = run(&[&consume[..], &["--quiet"]].concat(), b"");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("a\nb\nc\n", ""));
    let (stdout, stderr) = run(&[&consume[..], &["--group", "g"]].concat(), b"");
    assert_eq!(stdout, "a\nb\nc\n", "{stderr}");
    let (stdout, stderr) = run(
        &[
            "groups",
            "reset-offsets",
            "--group",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        b"",
    );
    assert!(
        stdout.starts_with("GROUP") && stdout.contains("NEW-OFFSET"),
        "{stdout}"
    );
    assert!(!stdout.contains("Dry run"), "{stdout}");
    assert!(
        stderr.contains("Dry run: nothing was committed"),
        "{stderr}"
    );
}
