//! The grammar refuses exactly the reserved words as names, and accepts the
//! contextual keywords (and words that merely start like a reserved one).

use mon_grammar::{parse, reserved_words, SyntaxErrorKind};

fn field_named(name: &str) -> Vec<SyntaxErrorKind> {
    parse(&format!("event e {{ {name}: string }}\n")).1.into_iter().map(|e| e.kind).collect()
}

#[test]
fn every_reserved_word_is_refused_as_a_field_name() {
    for word in reserved_words() {
        let errors = field_named(word);
        assert!(
            errors.iter().any(|e| matches!(e, SyntaxErrorKind::ReservedWord { word: w } if w == word)),
            "`{word}`: {errors:?}"
        );
    }
}

#[test]
fn contextual_keywords_and_lookalikes_are_names() {
    let names = [
        "status", "date", "key", "group", "event", "test", "on", "for", "to", "id", "from", "pii", "alert", "stage",
        "notifyx", "nota", "order", "assert", "inx", "bye", "whenever", "starts", "steps", "maybes", "opened",
        "graceful", "escalate",
    ];
    for name in names {
        assert_eq!(field_named(name), Vec::new(), "`{name}` should be a valid name");
    }
}
