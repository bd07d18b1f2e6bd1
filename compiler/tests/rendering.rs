//! The human rendering and the JSON form of a diagnostic point at the same
//! place: line and column, with columns counted in characters (as the
//! language server counts them too), also on lines with non-ASCII text.

use mon_compiler::{compile, NoFunctions, NoSchemas, Renderer, SourceFile};

#[test]
fn human_and_json_columns_count_characters() {
    let text = "event a { id: string }\nworkflow w { key id; expect a where id == \"é→ü\" and nosuch == 1 }\n";
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    assert_eq!(compilation.diagnostics.len(), 1, "{:?}", compilation.diagnostics);
    let renderer = Renderer { sources: &sources };
    let json = renderer.json(&compilation.diagnostics[0]);
    let line = text.lines().nth(1).expect("line 2");
    let expected = line[..line.find("nosuch").expect("nosuch")].chars().count() + 1;
    assert_eq!((json.line, json.column), (2, expected));
    let human = renderer.human(&compilation.diagnostics, false);
    assert!(human.contains(&format!("[t.mon:2:{expected}]")), "{human}");
}

#[test]
fn a_related_location_counts_characters_too() {
    let text = "event a { id: string }\n\
                workflow w { key id; start s: a where id == \"é→\"; step t: a after s; step t: a after s }\n";
    let sources = vec![SourceFile { path: "t.mon".into(), text: text.into() }];
    let compilation = compile(&sources, &NoFunctions, &NoSchemas);
    let renderer = Renderer { sources: &sources };
    let human = renderer.human(&compilation.diagnostics, false);
    let duplicate = compilation.diagnostics.iter().find(|d| !d.related.is_empty()).expect("a duplicate step");
    let json = renderer.json(duplicate);
    let first = &json.related[0];
    let line = text.lines().nth(1).expect("line 2");
    let first_t = line[..line.find("step t").expect("step t") + "step ".len()].chars().count() + 1;
    assert_eq!((first.line, first.column), (2, first_t));
    for (line, column) in [(json.line, json.column), (first.line, first.column)] {
        assert!(human.contains(&format!("[t.mon:{line}:{column}]")), "{human}");
    }
}
