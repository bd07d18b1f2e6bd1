//! Architecture invariants, tested: crates depend only on the crates above
//! them in ARCHITECTURE.md's table, the pure
//! crates know nothing of I/O frameworks, and every Rust file opens with a
//! `//!` paragraph saying what it is for.

use std::path::Path;
use std::process::Command;

/// The layers of ARCHITECTURE.md's crate table, top to bottom, and whether each is pure
/// (no I/O crate anywhere in its dependency tree).
const LAYERS: [(&str, bool); 8] = [
    ("mon-grammar", true),
    ("mon-compiler", true),
    ("mon-stdlib", true),
    ("mon-jit", true),
    ("mon-runtime", true),
    ("mon-loader", false),
    ("mon-service", false),
    ("mon-lsp", false),
];

/// Crates that do I/O or read clocks for their callers; none may be
/// reachable from a pure layer, directly or through another crate.
const IO_CRATES: [&str; 12] = [
    "tokio", "mio", "socket2", "rdkafka", "sled", "axum", "hyper", "reqwest", "ureq", "tracing", "figment", "tempfile",
];

fn metadata(no_deps: bool) -> serde_json::Value {
    let host = host_triple();
    let mut args = vec!["metadata", "--format-version", "1", "--offline", "--locked"];
    if no_deps {
        args.push("--no-deps");
    } else {
        // Only what this machine builds: other platforms' crates are not
        // downloaded, and --offline would fail on them.
        args.extend(["--filter-platform", host.as_str()]);
    }
    let output = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("metadata is JSON")
}

fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc -vV runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc names its host").trim().to_string()
}

#[test]
fn crates_depend_only_on_crates_above_them() {
    let metadata = metadata(true);
    let packages = metadata["packages"].as_array().expect("packages");
    let mut violations = Vec::new();
    let mut seen = 0;
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(layer) = LAYERS.iter().position(|(l, _)| *l == name) else { continue };
        seen += 1;
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            if let Some(dep_layer) = LAYERS.iter().position(|(l, _)| *l == dep_name) {
                // The LSP may use any layer it needs; the others only those above.
                if dep_layer >= layer && name != "mon-lsp" {
                    violations.push(format!("{name} depends on {dep_name}, which is not above it"));
                }
            }
        }
    }
    assert_eq!(seen, LAYERS.len(), "every layer is a workspace package");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// `cargo tree -p mon-runtime` shows no I/O crate (ARCHITECTURE.md rule 1):
/// the pure layers' normal dependencies, followed to the bottom, reach none
/// of `IO_CRATES`. The path to the offender is printed.
#[test]
fn pure_crates_reach_no_io_crate() {
    let metadata = metadata(false);
    let nodes = metadata["resolve"]["nodes"].as_array().expect("a resolved graph");
    let name_of = |id: &str| id_name(&metadata, id);
    let normal_deps = |id: &str| -> Vec<String> {
        let node = nodes.iter().find(|n| n["id"] == id).expect("a node for every id");
        node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"].is_null()))
            .map(|d| d["pkg"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut violations = Vec::new();
    for (crate_name, pure) in LAYERS {
        if !pure {
            continue;
        }
        let root = nodes
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default())
            .find(|id| name_of(id) == crate_name)
            .unwrap_or_else(|| panic!("{crate_name} is in the resolved graph"));
        // Breadth first, remembering how each crate was reached.
        let mut via: std::collections::HashMap<String, String> = Default::default();
        let mut queue = std::collections::VecDeque::from([root.to_string()]);
        while let Some(id) = queue.pop_front() {
            for dep in normal_deps(&id) {
                if dep != root && !via.contains_key(&dep) {
                    via.insert(dep.clone(), id.clone());
                    queue.push_back(dep);
                }
            }
        }
        for (id, _) in via.iter().filter(|(id, _)| IO_CRATES.contains(&name_of(id).as_str())) {
            let mut path = vec![name_of(id)];
            let mut at = id.clone();
            while let Some(parent) = via.get(&at) {
                path.push(name_of(parent));
                at = parent.clone();
            }
            path.reverse();
            violations.push(format!("{crate_name} is pure but reaches {}", path.join(" -> ")));
        }
    }
    violations.sort();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

fn id_name(metadata: &serde_json::Value, id: &str) -> String {
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == id)
        .and_then(|p| p["name"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for dir in
        ["src", "grammar", "compiler", "stdlib", "jit", "runtime", "loader", "service", "lsp", "tests", "benches"]
    {
        assert!(root.join(dir).is_dir(), "{dir}/ is gone: update this list");
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

/// The runtime is pure (ARCHITECTURE.md rule 1). Its manifest keeps the I/O
/// crates out (above); this keeps out what the standard library alone can
/// do: files, sockets and clocks.
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
        "std::env",
        "std::process",
    ];
    let mut offences = Vec::new();
    let mut checked = 0;
    visit(&src, &mut |path| {
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
