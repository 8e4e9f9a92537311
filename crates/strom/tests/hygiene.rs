//! Code hygiene of the whole workspace as ordinary tests: every Rust file of every crate
//! starts with a `//!` line saying what it is for, and library code has no panicking
//! shortcuts (a client or a disk must never be able to reach one).

use std::fs;
use std::path::{Path, PathBuf};

const BANNED_IN_LIBRARY_CODE: [&str; 5] = [
    ".unwrap()",
    ".expect(",
    "panic!(",
    "todo!(",
    "unimplemented!(",
];

fn workspace_crates() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&crates)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 7,
        "expected the workspace crates, found {dirs:?}"
    );
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn files_under(subdirs: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for krate in workspace_crates() {
        for sub in subdirs {
            rust_files(&krate.join(sub), &mut files);
        }
    }
    files
}

#[test]
fn every_rust_file_starts_with_a_doc_line() {
    let missing: Vec<String> = files_under(&["src", "tests", "benches"])
        .into_iter()
        .filter(|path| {
            !fs::read_to_string(path)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}

#[test]
fn library_code_has_no_panicking_shortcuts() {
    let mut found = Vec::new();
    for path in files_under(&["src"]) {
        // The test-support crate is a dev-dependency whose helpers fail tests by panicking.
        if path
            .components()
            .any(|c| c.as_os_str() == "strom-test-support")
        {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        // Unit tests at the end of a file may unwrap.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for banned in BANNED_IN_LIBRARY_CODE {
                if line.contains(banned) {
                    found.push(format!("{}:{}: {}", path.display(), number + 1, trimmed));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "panicking shortcuts in library code:\n{}",
        found.join("\n")
    );
}
