//! Code hygiene as a test: every source file of this crate starts with a `//!` line.

use std::path::Path;

fn check_dir(dir: &Path, missing: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            check_dir(&path, missing);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn every_module_says_what_it_is_for() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    check_dir(&root.join("src"), &mut missing);
    check_dir(&root.join("tests"), &mut missing);
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}
