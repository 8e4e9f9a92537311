//! The README's shell commands, run exactly as written, in order, in one shell, as a
//! newcomer on a fresh machine would: a fresh directory standing for the clone (with the
//! repository's `config/`), a fresh `$HOME`, the default ports and `./data`.
//!
//! What this test does not run itself, and what stands for it:
//! - `cargo build --release` and `cargo run --release -- server`: the binary cargo built for
//!   this test is placed at `./target/release/strom` (a release build would take most of the
//!   CI budget), and the server it would start is started by the quickstarts' own
//!   `strom server &` lines, which run as written;
//! - `scripts/test`: the test suite, which this test is part of;
//! - a `strom server ...` shown in the foreground (it runs until stopped): it is run as
//!   written with `&` appended, waited for until ready, then stopped with SIGTERM, and must
//!   exit 0.
//!
//! After a command ending in `&` (a server) the script waits until its ready line appears,
//! as a person would. A `# ...` line right after a command is its expected output: the
//! command's output must contain that line (`...` in it stands for any text).
//!
//! The README's addresses are fixed (127.0.0.1:9092, :9093, :8081). To run them beside other
//! tests and other people's brokers, the script runs in its own network namespace
//! (`unshare -rn`) when the machine allows it; otherwise on the host, after checking that
//! those ports are free.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the whole README may take (it waits for consumers' timeouts, two server starts
/// and shutdowns, and a schema registry start).
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

/// One command of a README code block, with its continuation lines and heredoc.
#[derive(Debug)]
struct Shown {
    /// The command as written (continuation lines and heredoc bodies included).
    text: String,
    /// README line number of its first line.
    line: usize,
    /// The `# ...` lines right after it: its expected output.
    expected: Vec<String>,
}

/// The commands of every ```sh block, in order.
fn shown_commands(readme: &str) -> Vec<Shown> {
    let mut commands: Vec<Shown> = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    let mut in_block = false;
    // Whether the previous line of the block was a command (so a comment is its output).
    let mut after_command = false;
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim();
        if !in_block {
            in_block = trimmed == "```sh";
            after_command = false;
            continue;
        }
        if trimmed == "```" {
            in_block = false;
            continue;
        }
        if trimmed.is_empty() {
            after_command = false;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if after_command {
                let last = commands.last_mut().expect("a command before its output");
                last.expected.push(comment.trim().to_string());
            }
            continue;
        }
        let mut text = line.to_string();
        while text.ends_with('\\') {
            let (_, next) = lines.next().expect("a continuation line");
            text.push('\n');
            text.push_str(next);
        }
        if let Some(delimiter) = heredoc_delimiter(&text) {
            loop {
                let (_, next) = lines.next().expect("the heredoc's end");
                text.push('\n');
                text.push_str(next);
                if next.trim() == delimiter {
                    break;
                }
            }
        }
        commands.push(Shown {
            text,
            line: index + 1,
            expected: Vec::new(),
        });
        after_command = true;
    }
    commands
}

/// `EOF` of `<<'EOF'` or `<<EOF`.
fn heredoc_delimiter(command: &str) -> Option<String> {
    let rest = command.split_once("<<")?.1.trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The command without its trailing `# comment` (none of the README's commands has a `#`
/// inside quotes).
fn without_comment(text: &str) -> &str {
    match text.find(" #") {
        Some(at) => text[..at].trim_end(),
        None => text.trim_end(),
    }
}

/// What the test does with one command.
#[derive(Debug, PartialEq)]
enum Plan {
    Run,
    /// A server in the background: run, then wait for its ready line.
    Background,
    /// A server in the foreground: run in the background, wait until ready, stop it.
    Foreground,
    /// Not run (see the module comment); the reason.
    Skip(&'static str),
}

fn plan(text: &str) -> Plan {
    let command = without_comment(text);
    match command {
        "cargo build --release" => Plan::Skip("the test's build stands for it"),
        "cargo run --release -- server" => Plan::Skip("a release build and a server start"),
        "scripts/test" => Plan::Skip("the test suite itself"),
        _ if command.ends_with('&') => Plan::Background,
        _ if command.starts_with("strom server")
            || command.starts_with("./target/release/strom server") =>
        {
            Plan::Foreground
        }
        _ => Plan::Run,
    }
}

/// The shell script: every command with a marker before it and its exit status after it;
/// the first failure ends the script (its background jobs are stopped on exit).
fn script(commands: &[Shown]) -> String {
    let mut out = String::from(
        r#"set -o pipefail
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
readme_ready_lines=0
# Waits (bounded) for one more ready line on stdout, failing if the job $1 exited first.
readme_wait_ready() {
    readme_ready_lines=$((readme_ready_lines + 1))
    for _ in $(seq 1 1200); do
        if [ "$(grep -c '^strom .*ready: ' "$README_STDOUT")" -ge "$readme_ready_lines" ]; then
            return 0
        fi
        if ! kill -0 "$1" 2>/dev/null; then
            echo "readme test: the server exited before its ready line" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "readme test: no ready line within 120 s" >&2
    return 1
}
"#,
    );
    for (index, command) in commands.iter().enumerate() {
        let body = match plan(&command.text) {
            Plan::Skip(_) => continue,
            Plan::Run => command.text.clone(),
            Plan::Background => format!("{}\nreadme_wait_ready $!", command.text),
            Plan::Foreground => {
                assert!(!command.text.contains('#'), "{}", command.text);
                format!(
                    "{} &\nreadme_wait_ready $! && kill %+ && wait %+",
                    command.text
                )
            }
        };
        out.push_str(&format!(
            "echo '@@readme {index}'\n{body}\nreadme_rc=$?\n\
             printf '\\n@@readme-rc %s %s\\n' {index} $readme_rc\n\
             [ $readme_rc -eq 0 ] || exit $readme_rc\n"
        ));
    }
    out.push_str("echo '@@readme done'\n");
    out
}

/// The output between a command's markers.
fn section(stdout: &str, index: usize) -> &str {
    let start_marker = format!("@@readme {index}\n");
    let Some(start) = stdout.find(&start_marker) else {
        return "";
    };
    let rest = &stdout[start + start_marker.len()..];
    let end = rest
        .find(&format!("@@readme-rc {index} "))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Whether a line of `output` matches `expected`, where `...` stands for any text.
fn expected_in(output: &str, expected: &str) -> bool {
    let parts: Vec<&str> = expected.split("...").collect();
    output.lines().map(str::trim_end).any(|line| {
        let (first, rest) = (parts[0], &parts[1..]);
        let Some(mut tail) = line.strip_prefix(first) else {
            return false;
        };
        for (i, part) in rest.iter().enumerate() {
            if i + 1 == rest.len() {
                return tail.ends_with(part);
            }
            match tail.find(part) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.is_empty()
    })
}

/// Whether `unshare -rn` gives this test a private loopback.
fn network_namespace_works() -> bool {
    Command::new("unshare")
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn readme_extraction_finds_every_block() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let commands = shown_commands(&readme);
    let skipped: Vec<&str> = commands
        .iter()
        .filter(|c| matches!(plan(&c.text), Plan::Skip(_)))
        .map(|c| without_comment(&c.text))
        .collect();
    // Exactly the commands the module comment names; any other command must run.
    assert_eq!(
        skipped,
        [
            "cargo run --release -- server",
            "scripts/test",
            "cargo build --release"
        ]
    );
    let heredoc = commands
        .iter()
        .find(|c| c.text.starts_with("cat > order.avsc"))
        .expect("the schema heredoc");
    assert!(heredoc.text.ends_with("\nEOF"), "{}", heredoc.text);
    assert!(commands
        .iter()
        .any(|c| c.text.contains("\\\n    | strom produce")));
    let kcat = commands
        .iter()
        .find(|c| c.text.starts_with("kcat -C"))
        .unwrap();
    assert_eq!(kcat.expected, ["k1=hello partition 0 offset 0"]);
    assert!(expected_in(
        "x\n{\"a\":1,\"b\":{\"c\":2},\"d\":3}\n",
        "{\"a\":1,...},...}"
    ));
    assert!(expected_in("m{t=\"o\"} 73\n", "m{t=\"o\"} ..."));
    assert!(expected_in("[1]\n", "[1]"));
    assert!(!expected_in("[12]\n", "[1]"));
    assert!(!expected_in("{\"a\":2}\n", "{\"a\":1...}"));
}

#[test]
fn readme_commands_run_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let commands = shown_commands(&readme);
    assert!(commands.len() > 30, "{commands:?}");
    for tool in ["kcat", "curl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "the README uses {tool}; install it (scripts/test does)"
        );
    }

    // The fresh clone: config/ and the binary where `cargo build --release` puts it.
    let root = tempfile::tempdir().unwrap();
    let clone = root.path().join("strom");
    let home = root.path().join("home");
    std::fs::create_dir_all(clone.join("target/release")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    copy_dir(&repo_root().join("config"), &clone.join("config"));
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_strom"),
        clone.join("target/release/strom"),
    )
    .unwrap();
    let script_path = root.path().join("readme.sh");
    std::fs::write(&script_path, script(&commands)).unwrap();
    let stdout_path = root.path().join("stdout");
    let stderr_path = root.path().join("stderr");

    let mut command = if network_namespace_works() {
        let mut command = Command::new("unshare");
        command.args(["-rn", "sh", "-c", "ip link set lo up && exec bash \"$0\""]);
        command
    } else {
        for port in [9092, 9093, 8081] {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "no network namespace (unshare -rn) here, and 127.0.0.1:{port}, which the README \
                 uses, is taken: stop what listens there and run again"
            );
        }
        Command::new("bash")
    };
    // A shell without the tester's settings: no strom on PATH or bootstrap address.
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .arg(&script_path)
        .current_dir(&clone)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("README_STDOUT", &stdout_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0);
    let mut child = command.spawn().expect("run the README script");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_LIMIT {
            // The whole process group: the shell and the servers it started.
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let mut stderr = String::new();
    std::fs::File::open(&stderr_path)
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    for (index, shown) in commands.iter().enumerate() {
        if matches!(plan(&shown.text), Plan::Skip(_)) {
            continue;
        }
        let rc_marker = format!("@@readme-rc {index} ");
        let rc = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&rc_marker))
            .unwrap_or_else(|| {
                let lines: Vec<&str> = stdout.lines().collect();
                let stdout_tail = lines[lines.len().saturating_sub(60)..].join("\n");
                panic!(
                    "README line {}: `{}` did not finish (status {status:?}); stdout (tail):\n\
                     {stdout_tail}\nstderr (tail):\n{tail}",
                    shown.line, shown.text
                )
            });
        let output = section(&stdout, index);
        assert_eq!(
            rc, "0",
            "README line {}: `{}` failed; its output:\n{output}\nstderr (tail):\n{tail}",
            shown.line, shown.text
        );
        for expected in &shown.expected {
            assert!(
                expected_in(output, expected),
                "README line {}: `{}` printed no line {expected:?}; it printed:\n{output}",
                shown.line,
                shown.text
            );
        }
    }
    assert!(stdout.contains("@@readme done"), "{tail}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{tail}");
    // What the README says the commands leave behind.
    assert!(clone.join("data/__cluster_metadata-0").is_dir());
    assert!(clone.join("data-sync/__cluster_metadata-0").is_dir());
    let completions = home.join(".local/share/bash-completion/completions/strom");
    let completions = std::fs::read_to_string(completions).unwrap();
    assert!(completions.contains("reset-offsets"), "{completions}");
}
