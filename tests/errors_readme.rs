//! `docs/errors/README.md` lists every code of the registry, with its title.

use std::path::Path;

#[test]
fn the_error_index_lists_every_code() {
    let index = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors/README.md"))
        .expect("docs/errors/README.md");
    let missing: Vec<String> = mon_compiler::codes::ALL
        .iter()
        .filter(|c| !index.contains(&format!("| [{id}]({id}.md) | {} |", c.title, id = c.id)))
        .map(|c| format!("{} {}", c.id, c.title))
        .collect();
    assert!(missing.is_empty(), "not in docs/errors/README.md: {missing:?}");
}
