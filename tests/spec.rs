//! The specification is normative: every ```mon block of docs/LANGUAGE.md is
//! extracted here and must pass `mon check`, alone where it stands alone and
//! all together as the one program the spec says they form.

use std::path::Path;
use std::process::Command;

fn spec_blocks() -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LANGUAGE.md");
    let text = std::fs::read_to_string(path).expect("docs/LANGUAGE.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```mon" => current = Some((n + 1, String::new())),
            Some(_) if line.trim() == "```" => blocks.push(current.take().expect("an open block")),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn all_spec_blocks_form_one_program_that_passes_mon_check() {
    let blocks = spec_blocks();
    assert!(blocks.len() >= 8, "expected the spec's mon blocks, found {}", blocks.len());
    let dir = tempdir("spec");
    for (line, body) in &blocks {
        std::fs::write(dir.join(format!("line_{line:04}.mon")), body).expect("write block");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_mon")).arg("check").arg(&dir).output().expect("mon runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mon check failed on the spec:\n{stderr}");
    assert!(stderr.contains("0 errors, 0 warnings"), "{stderr}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mon-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
