//! Every page of `docs/errors/` shows its code happening: the page's first
//! ```mon block, checked alone, gives that code, and a block after the
//! page's `**Fix.**` line, if there is one, checks with no errors.
//! `tests/ui.rs` only checks that a page exists and has a block; this test
//! checks what the block says.
//!
//! A page's ```json block, if it has one, is the schema its example imports
//! (E214); without one every schema is unreadable (E213). An example that
//! elides part of itself (E416's 33 steps) is listed in [`ABRIDGED`] and
//! only has to parse.

use std::path::Path;

use mon_compiler::{codes, compile, SchemaLoader, SourceFile};

/// Pages whose example is cut short with a `// ...` comment, so that it
/// cannot show its code; it must still parse.
const ABRIDGED: &[&str] = &["E416"];

/// Serves the page's ```json block as whatever schema the example imports.
struct PageSchema(Option<String>);

impl SchemaLoader for PageSchema {
    fn load(&self, _rule_file: &str, relative: &str) -> Result<String, String> {
        self.0.clone().ok_or_else(|| format!("no such file: {relative}"))
    }
}

fn fenced(text: &str, language: &str) -> Option<String> {
    let start = text.find(&format!("```{language}\n"))? + language.len() + 4;
    let end = start + text[start..].find("```")?;
    Some(text[start..end].to_string())
}

/// The ```mon blocks of a page, with the line of each opening fence and
/// whether the block comes after the page's `**Fix.**` line.
fn blocks(text: &str) -> Vec<(usize, bool, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, bool, String)> = None;
    let mut after_fix = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("**Fix.**") {
            after_fix = true;
        }
        match &mut current {
            None if line.trim() == "```mon" => current = Some((n + 1, after_fix, String::new())),
            Some(_) if line.trim() == "```" => blocks.push(current.take().expect("an open block")),
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_error_page_shows_its_code_and_a_fix_that_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors");
    let mut failures = Vec::new();
    for code in codes::ALL {
        let name = format!("{}.md", code.id);
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            failures.push(format!("{name}: missing"));
            continue;
        };
        let blocks = blocks(&text);
        let schema = PageSchema(fenced(&text, "json"));
        let compile_block = |body: &str| {
            let sources = vec![SourceFile { path: "rules/example.mon".into(), text: body.to_string() }];
            compile(&sources, mon_stdlib::registry(), &schema)
        };
        match blocks.iter().find(|(_, fix, _)| !fix) {
            None => failures.push(format!("{name}: no ```mon example before **Fix.**")),
            Some((line, _, body)) if ABRIDGED.contains(&code.id) => {
                let (_, errors) = mon_grammar::parse(body);
                if !errors.is_empty() {
                    failures.push(format!("{name}:{line}: the abridged example does not parse: {errors:?}"));
                }
            }
            Some((line, _, body)) => {
                let found: Vec<&str> = compile_block(body).diagnostics.iter().map(|d| d.kind.code().id).collect();
                if !found.contains(&code.id) {
                    failures.push(format!("{name}:{line}: the example gives {found:?}, not {}", code.id));
                }
            }
        }
        for (line, _, body) in blocks.iter().filter(|(_, fix, _)| *fix) {
            let compilation = compile_block(body);
            if compilation.has_errors() {
                let found: Vec<&str> = compilation.diagnostics.iter().map(|d| d.kind.code().id).collect();
                failures.push(format!("{name}:{line}: the fix still has errors {found:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "error pages whose examples are wrong:\n{}", failures.join("\n"));
}
