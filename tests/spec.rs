//! The specification is normative: every ```mon block of docs/LANGUAGE.md is
//! extracted here and must pass `mon check` with no errors and no warnings,
//! alone where it stands alone, and all together as the one program the spec
//! says they form.
//!
//! Most blocks use declarations made in other blocks (a workflow's events are
//! declared in §2 or Appendix A). [`FRAGMENTS`] lists those blocks, each with
//! the blocks it uses; such a block is checked together with those blocks
//! (and, in turn, the blocks they use) and nothing else. Every other block is
//! checked alone. A block is named by its first declaration, not its line, so
//! that editing the prose above it does not break the list; a failure names
//! the block's line in LANGUAGE.md. Each block is written to a file named
//! for that line (`LANGUAGE_md_line_0097.mon`), so a diagnostic at line `L`
//! of that file is at line `97 + L` of LANGUAGE.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The blocks that are not self-contained: (the block's first declaration,
/// the first declarations of the blocks whose declarations it uses).
const FRAGMENTS: &[(&str, &[&str])] = &[
    // Its three events are in Appendix A.
    ("workflow batch_sequence", &[APPENDIX_A]),
    // `trade_ingested` is in §2, the other events in Appendix A.
    ("workflow trade_lifecycle", &[EVENTS, APPENDIX_A]),
    // `file_received` is in §2, `file_loaded` and `prices_*` in Appendix A.
    ("calendar uk_holidays", &[EVENTS, APPENDIX_A]),
    // The maintenance window is `for daily_feed` (§3.5).
    ("channel trade_support", &[SCHEDULED]),
    // `depends on trade_lifecycle` (§3.2); its events are in Appendix A.
    ("workflow settlement", &[GRAPH, APPENDIX_A]),
    // The v1.5 escalation example notifies and escalates to the channels of
    // §3.8; its events are in Appendix A.
    ("channel team_lead", &[CHANNELS, APPENDIX_A]),
    // The test drives `daily_feed` (§3.5).
    ("test \"a late file turns the feed red, then late\"", &[SCHEDULED]),
];

const EVENTS: &str = "event file_received";
const GRAPH: &str = "workflow trade_lifecycle";
const SCHEDULED: &str = "calendar uk_holidays";
const APPENDIX_A: &str = "event file_loaded";
const CHANNELS: &str = "channel trade_support";

struct Block {
    /// The line of its opening fence in LANGUAGE.md.
    line: usize,
    body: String,
}

impl Block {
    /// The block's first declaration: the keyword and name on its first
    /// line that is not a comment (`event file_received`, `test "name"`).
    fn name(&self) -> String {
        let first =
            self.body.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//")).unwrap_or_default();
        let (keyword, rest) = first.split_once(' ').unwrap_or((first, ""));
        let name = match rest.strip_prefix('"') {
            Some(quoted) => &rest[..quoted.find('"').map_or(rest.len(), |end| end + 2)],
            None => rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default(),
        };
        format!("{keyword} {name}")
    }
}

fn spec_blocks() -> Vec<Block> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LANGUAGE.md");
    let text = std::fs::read_to_string(path).expect("docs/LANGUAGE.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```mon" => current = Some(Block { line: n + 1, body: String::new() }),
            Some(_) if line.trim() == "```" => blocks.push(current.take().expect("an open block")),
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "a ```mon block of LANGUAGE.md is not closed");
    assert!(blocks.len() >= 8, "expected the spec's mon blocks, found {}", blocks.len());
    blocks
}

/// Runs `mon check` on the blocks, one file each, in a fresh directory.
/// Returns its stderr if it found any error or warning.
fn mon_check(name: &str, blocks: &[&Block]) -> Result<(), String> {
    let dir = tempdir(name);
    for block in blocks {
        std::fs::write(dir.join(format!("LANGUAGE_md_line_{:04}.mon", block.line)), &block.body).expect("write block");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_mon")).arg("check").arg(&dir).output().expect("mon runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() && stderr.contains("0 errors, 0 warnings") {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// The block named `name` and every block it uses, directly or not.
fn with_prerequisites<'b>(blocks: &'b [Block], name: &str) -> Vec<&'b Block> {
    let mut wanted = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(next) = todo.pop() {
        if wanted.insert(next.clone()) {
            let needs = FRAGMENTS.iter().find(|(n, _)| *n == next).map_or(&[][..], |(_, needs)| *needs);
            todo.extend(needs.iter().map(|n| n.to_string()));
        }
    }
    blocks.iter().filter(|b| wanted.contains(&b.name())).collect()
}

#[test]
fn every_spec_block_passes_mon_check_alone_or_with_the_blocks_it_uses() {
    let blocks = spec_blocks();
    let names: Vec<String> = blocks.iter().map(Block::name).collect();
    let mut failures = Vec::new();
    for (fragment, needs) in FRAGMENTS {
        for name in std::iter::once(fragment).chain(needs.iter()) {
            let count = names.iter().filter(|n| n == name).count();
            if count != 1 {
                failures.push(format!("FRAGMENTS names `{name}`, which starts {count} blocks of LANGUAGE.md, not 1"));
            }
        }
    }
    for block in &blocks {
        let name = block.name();
        let at = format!("LANGUAGE.md:{} (`{name}`)", block.line);
        if FRAGMENTS.iter().any(|(n, _)| *n == name) {
            // A fragment listed here must really need what it lists, or the
            // list stops saying which blocks are fragments.
            if mon_check(&format!("alone-{}", block.line), &[block]).is_ok() {
                failures.push(format!("{at} passes alone: remove it from FRAGMENTS"));
            }
            let group = with_prerequisites(&blocks, &name);
            if let Err(stderr) = mon_check(&format!("with-{}", block.line), &group) {
                let lines: Vec<String> = group.iter().map(|b| b.line.to_string()).collect();
                failures.push(format!("{at} fails with the blocks at lines {}:\n{stderr}", lines.join(", ")));
            }
        } else if let Err(stderr) = mon_check(&format!("alone-{}", block.line), &[block]) {
            failures.push(format!("{at} fails alone (if it uses other blocks, list it in FRAGMENTS):\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "spec blocks that fail:\n{}", failures.join("\n"));
}

#[test]
fn all_spec_blocks_form_one_program_that_passes_mon_check() {
    let blocks = spec_blocks();
    let all: Vec<&Block> = blocks.iter().collect();
    if let Err(stderr) = mon_check("all", &all) {
        panic!("mon check failed on the spec's blocks taken together:\n{stderr}");
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mon-test-spec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
