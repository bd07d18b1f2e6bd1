//! Architecture invariants, tested (STYLE.md lessons 2 and 13): crates
//! depend only on the crates above them in DESIGN.md's table, the pure
//! crates know nothing of I/O frameworks, and every Rust file opens with a
//! `//!` paragraph saying what it is for.

use std::path::Path;
use std::process::Command;

/// The layers of DESIGN.md §2, top to bottom.
const LAYERS: [&str; 5] = ["mon-grammar", "mon-compiler", "mon-stdlib", "mon-runtime", "mon-lsp"];

/// Crates that must never appear under the pure layers.
const IO_CRATES: [&str; 6] = ["tokio", "rdkafka", "sled", "axum", "hyper", "reqwest"];

fn metadata() -> serde_json::Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("metadata is JSON")
}

#[test]
fn crates_depend_only_on_crates_above_them() {
    let metadata = metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    let mut violations = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(layer) = LAYERS.iter().position(|l| *l == name) else { continue };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            if let Some(dep_layer) = LAYERS.iter().position(|l| *l == dep_name) {
                // The LSP may use any layer it needs; the others only those above.
                if dep_layer >= layer && name != "mon-lsp" {
                    violations.push(format!("{name} depends on {dep_name}, which is not above it"));
                }
            }
            if layer <= 2 && IO_CRATES.contains(&dep_name) {
                violations.push(format!("{name} is a pure crate but depends on {dep_name}"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for dir in ["src", "grammar", "compiler", "stdlib", "runtime", "lsp", "tests", "benches"] {
        visit(&root.join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).expect("readable");
            if !text.trim_start().starts_with("//!") {
                missing.push(path.strip_prefix(root).unwrap_or(path).display().to_string());
            }
        });
    }
    assert!(missing.is_empty(), "files without a //! header:\n{}", missing.join("\n"));
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target" || n == "snapshots") {
                continue;
            }
            visit(&path, f);
        } else if path.extension().is_some_and(|e| e == "rs") {
            f(&path);
        }
    }
}
