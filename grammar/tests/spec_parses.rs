//! Every ```mon block of the language specification parses without errors.

use std::path::Path;

fn spec_blocks() -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/LANGUAGE.md");
    let text = std::fs::read_to_string(&path).expect("docs/LANGUAGE.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```mon" => current = Some((n + 1, String::new())),
            Some(_) if line.trim() == "```" => blocks.push(current.take().expect("open block")),
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
fn every_spec_block_parses() {
    let blocks = spec_blocks();
    assert!(blocks.len() >= 8, "found only {} mon blocks", blocks.len());
    for (line, block) in blocks {
        let (file, errors) = mon_grammar::parse(&block);
        assert!(errors.is_empty(), "block at LANGUAGE.md:{line}: {errors:#?}");
        assert!(!file.items.is_empty(), "block at LANGUAGE.md:{line} has no items");
    }
}
