//! Code hygiene of this crate as ordinary tests: module docs and no panicking shortcuts
//! in library code.

use std::fs;
use std::path::Path;

fn library_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
    assert!(
        out.len() >= 10,
        "expected the crate's modules, found {}",
        out.len()
    );
    out
}

#[test]
fn every_module_starts_with_a_doc_line() {
    for (path, text) in library_sources() {
        assert!(text.starts_with("//! "), "{path} lacks a leading //! line");
    }
}

#[test]
fn library_code_has_no_panicking_shortcuts() {
    for (path, text) in library_sources() {
        // Unit tests at the end of a file may unwrap.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for banned in [
            ".unwrap()",
            ".expect(",
            "panic!(",
            "todo!(",
            "unimplemented!(",
        ] {
            assert!(!code.contains(banned), "{path} contains {banned}");
        }
    }
}
