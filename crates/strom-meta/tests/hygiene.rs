//! Code hygiene as a test: every source file starts with a `//!` line saying what it is for.

use std::path::Path;

fn visit(dir: &Path, missing: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            visit(&path, missing);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn every_module_has_a_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    visit(&root.join("src"), &mut missing);
    visit(&root.join("tests"), &mut missing);
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}
