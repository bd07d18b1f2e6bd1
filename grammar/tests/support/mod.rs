//! Rule text the grammar's tests share: the spec's blocks and every `.mon`
//! file of the repository, whatever is there today.

#![allow(dead_code)] // Each test crate uses a part.

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every ```mon block of the spec, with where it starts.
pub fn spec_blocks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("docs/LANGUAGE.md")).expect("docs/LANGUAGE.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```mon" => current = Some((n + 1, String::new())),
            Some(_) if line.trim() == "```" => {
                let (line, body) = current.take().expect("open block");
                blocks.push((format!("LANGUAGE.md:{line}"), body));
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every `.mon` file under `examples/` and `tests/`, whatever is there today.
pub fn repo_mon_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "mon") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for dir in ["examples", "tests"] {
        walk(&repo_root().join(dir), &mut found);
    }
    found.sort();
    found
}

/// The text of every spec block and every `.mon` file of the repository.
pub fn corpus() -> Vec<(String, String)> {
    let mut corpus = spec_blocks();
    for path in repo_mon_files() {
        if let Ok(text) = std::fs::read_to_string(&path) {
            corpus.push((path.display().to_string(), text));
        }
    }
    corpus
}
