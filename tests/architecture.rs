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

/// The engine is pure (DESIGN.md §1 rule 1): the modules of the core use
/// none of the service's crates and read no clock. Only `runtime/src/service/`
/// may.
#[test]
fn the_engine_modules_do_no_io_and_read_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
    let forbidden = [
        "sled",
        "rdkafka",
        "tokio",
        "axum",
        "tracing",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "crate::service",
    ];
    let mut offences = Vec::new();
    let mut checked = 0;
    visit(&src, &mut |path| {
        // lib.rs declares the service module beside the core.
        if path.starts_with(src.join("service")) || path.ends_with("lib.rs") {
            return;
        }
        checked += 1;
        let text = std::fs::read_to_string(path).expect("read");
        // Tests may use temporary files; only the code above them counts.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in forbidden {
            if code.contains(word) {
                offences.push(format!("{} uses {word}", path.display()));
            }
        }
    });
    assert!(checked >= 9, "only {checked} engine files found");
    assert!(offences.is_empty(), "the engine must stay pure:\n{}", offences.join("\n"));
}
