//! The diagnostics corpus: every `tests/ui/*.mon` file (or `tests/ui/<case>/`
//! directory, for problems that span files) is compiled, and its rendered
//! diagnostics are snapshotted next to the source. Each case names the codes
//! it must produce in a header line `// codes: E201 E202`; the test asserts
//! exactly those codes, so a snapshot cannot silently drift to another error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mon_compiler::{codes, compile, Renderer, SourceFile};

struct Case {
    name: String,
    files: Vec<SourceFile>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn cases() -> Vec<Case> {
    let dir = root().join("tests/ui");
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("tests/ui exists").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    let mut cases = Vec::new();
    for path in entries {
        let name = path.file_stem().expect("a name").to_string_lossy().into_owned();
        if path.is_dir() || path.extension().is_some_and(|e| e == "mon") {
            // Relative to the package root (the test's working directory),
            // so snapshots name files as a user in the repository would.
            // The files are grouped and read by the loader the CLI uses.
            let relative = path.strip_prefix(root()).expect("under the repo").to_path_buf();
            let program = mon_loader::load_one(&[relative]).unwrap_or_else(|e| panic!("case {name}: {e}"));
            cases.push(Case { name, files: program.files });
        }
    }
    cases
}

fn declared_codes(case: &Case) -> BTreeSet<String> {
    case.files
        .iter()
        .flat_map(|f| f.text.lines())
        .filter_map(|l| l.trim().strip_prefix("// codes:"))
        .flat_map(|codes| codes.split_whitespace().map(str::to_string))
        .collect()
}

#[test]
fn every_case_renders_its_declared_codes() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} ui cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let compilation = compile(&case.files, mon_stdlib::registry(), &mon_loader::FsSchemas);
        let found: BTreeSet<String> = compilation.diagnostics.iter().map(|d| d.kind.code().id.to_string()).collect();
        let declared = declared_codes(case);
        if declared.is_empty() {
            failures.push(format!("{}: no `// codes:` header", case.name));
        } else if found != declared {
            failures.push(format!("{}: declared {declared:?}, found {found:?}", case.name));
        }
        let rendered = Renderer { sources: &case.files }.human(&compilation.diagnostics, false);
        let mut snapshot = String::new();
        for file in &case.files {
            snapshot.push_str(&format!("--- {}\n{}\n", file.path, file.text.trim_end()));
        }
        snapshot.push_str("--- diagnostics\n");
        snapshot.push_str(rendered.trim_end());
        snapshot.push('\n');
        insta::assert_snapshot!(case.name.clone(), snapshot);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_code_has_a_case_and_a_page() {
    let covered: BTreeSet<String> = cases().iter().flat_map(declared_codes).collect();
    let mut missing = Vec::new();
    for code in codes::ALL {
        if !covered.contains(code.id) {
            missing.push(format!("{}: no case in tests/ui", code.id));
        }
        let page = root().join("docs/errors").join(format!("{}.md", code.id));
        match std::fs::read_to_string(&page) {
            Ok(text) if text.contains(code.id) && text.contains("```mon") => {}
            Ok(_) => missing.push(format!("{}: docs/errors/{}.md lacks its code or an example", code.id, code.id)),
            Err(_) => missing.push(format!("{}: no docs/errors/{}.md", code.id, code.id)),
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
