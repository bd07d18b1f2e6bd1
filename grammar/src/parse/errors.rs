//! pest's errors in words: what was found and what would have been valid.
//!
//! pest reports a position and the rules it tried there. This module turns
//! that into a [`SyntaxError`] a person can act on: it names the token found,
//! lists the alternatives in words, and recognizes the common mistakes that
//! deserve their own error (a spelled-out duration, an unclosed string, a
//! reserved word used as a name, a missing `}`).

use pest::error::{ErrorVariant, InputLocation};

use super::build::Rule;
use super::split::walk_raw;
use crate::ast::Span;
use crate::error::{SyntaxError, SyntaxErrorKind};

/// Turns pest's "expected one of these rules" into a [`SyntaxError`] that
/// names what was found and what would have been valid, in words.
pub(super) fn convert_error(src: &str, offset: usize, err: &pest::error::Error<Rule>) -> SyntaxError {
    let pos = offset
        + match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let found = token_at(src, pos);
    let span = Span::new(pos, pos + found.len());
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };

    if let Some((number, word, unit)) = spelled_out_duration(&src[pos..]) {
        if positives.iter().any(|r| matches!(r, Rule::duration)) {
            let len = src[pos..].find(word).map_or(number.len(), |i| i + word.len());
            return SyntaxError {
                kind: SyntaxErrorKind::InvalidDuration {
                    written: src[pos..pos + len].to_string(),
                    suggestion: unit.map(|u| format!("{number}{u}")),
                },
                span: Span::new(pos, pos + len),
            };
        }
    }
    if src[pos..].starts_with('"') && !src[pos + 1..].split('\n').next().unwrap_or("").contains('"') {
        let end = src[pos..].find('\n').map_or(src.len(), |i| pos + i);
        return SyntaxError { kind: SyntaxErrorKind::UnterminatedString, span: Span::new(pos, end) };
    }
    if positives.contains(&Rule::ident) && RESERVED.contains(&found.as_str()) {
        return SyntaxError { kind: SyntaxErrorKind::ReservedWord { word: found }, span };
    }
    let mut expected: Vec<String> = Vec::new();
    for rule in positives {
        let word = describe(rule).to_string();
        if !expected.contains(&word) {
            expected.push(word);
        }
    }
    let braces_open = {
        let mut depth = 0i64;
        walk_raw(&src[offset..], |_, b| {
            match b {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            false
        });
        depth > 0
    };
    if (pos >= src.len() && braces_open) || found == "}" {
        // End of input while a block is open: the usual cause is a missing brace.
        if pos >= src.len() {
            // Point at the last character: an empty span draws no caret.
            let last = src.char_indices().last().map_or(0, |(i, _)| i);
            return SyntaxError { kind: SyntaxErrorKind::UnclosedBlock, span: Span::new(last, src.len()) };
        }
    }
    SyntaxError { kind: SyntaxErrorKind::Unexpected { found: describe_found(&found), expected }, span }
}

/// The words `reserved` refuses as names in mon.pest.
pub(super) const RESERVED: &[&str] = &[
    "and", "or", "not", "in", "true", "false", "where", "after", "by", "within", "warn", "grace", "as", "then",
    "expect", "start", "step", "maybe", "every", "except", "open", "severity", "runbook", "notify", "renotify", "when",
    "before",
];

/// `5 minutes`, `5min`, `2 hours` and friends: a number and a spelled-out unit.
fn spelled_out_duration(text: &str) -> Option<(&str, &str, Option<&'static str>)> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let number = &text[..digits];
    let rest = text[digits..].trim_start_matches([' ', '\t']);
    let word_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    let word = &rest[..word_len];
    if word.is_empty() {
        // A bare number where a duration belongs.
        return Some((number, number, None)).filter(|_| !text[digits..].starts_with([':', '.', '-']));
    }
    let unit = match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        // A bare number, then the next word of the statement (`within 2
        // warn 1m`): the unit is what is missing. A word written onto the
        // number (`2x`) makes it something else.
        _ if rest.len() < text[digits..].len() => return Some((number, number, None)),
        _ => return None,
    };
    Some((number, word, Some(unit)))
}

pub(super) fn token_at(src: &str, pos: usize) -> String {
    let rest = &src[pos.min(src.len())..];
    let Some(first) = rest.chars().next() else {
        return String::new();
    };
    if first.is_ascii_alphanumeric() || first == '_' {
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        return rest[..end].to_string();
    }
    if first == '\n' || first == '\r' {
        return "\n".to_string();
    }
    for op in ["->", "==", "!=", "<=", ">=", "??"] {
        if rest.starts_with(op) {
            return op.to_string();
        }
    }
    first.to_string()
}

pub(super) fn describe_found(found: &str) -> String {
    match found {
        "" => "the end of the file".to_string(),
        "\n" => "the end of the line".to_string(),
        other => format!("`{other}`"),
    }
}

/// How a grammar rule reads in an error message.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::ident | Rule::named_type => "a name",
        Rule::zone => "a time zone",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::duration => "a duration such as `5m`",
        Rule::time_of_day => "a time of day such as `08:00`",
        Rule::date => "a date such as `2026-03-02`",
        Rule::timestamp => "a timestamp such as `2026-03-02T08:00:00Z`",
        Rule::day_offset => "a day offset such as `+1d`",
        Rule::string => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::expr
        | Rule::expr_in
        | Rule::paren
        | Rule::list
        | Rule::call
        | Rule::path
        | Rule::op_not
        | Rule::op_neg => "an expression",
        Rule::op_or
        | Rule::op_and
        | Rule::op_not_in
        | Rule::op_in
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_coalesce => "an operator",
        Rule::event_decl | Rule::kw_event => "`event`",
        Rule::workflow_decl | Rule::kw_workflow => "`workflow`",
        Rule::channel_decl | Rule::kw_channel => "`channel`",
        Rule::calendar_decl | Rule::kw_calendar => "`calendar`",
        Rule::maintenance_decl | Rule::kw_maintenance => "`maintenance`",
        Rule::test_decl | Rule::kw_test => "`test`",
        Rule::event_schema | Rule::kw_from => "`from`",
        Rule::event_fields | Rule::record => "`{`",
        Rule::field => "a field such as `trade_id: string`",
        Rule::type_expr => "a type",
        Rule::enum_type | Rule::kw_enum => "`enum`",
        Rule::pii | Rule::kw_pii => "`pii`",
        Rule::optional => "`?`",
        Rule::key_stmt | Rule::kw_key => "`key`",
        Rule::key_mapping => "a key mapping such as `trade_id = sys3_ack.ref`",
        Rule::qualified => "a qualified name such as `event.field`",
        Rule::group_stmt | Rule::kw_group => "`group by`",
        Rule::cohort_stmt | Rule::kw_cohort => "`cohort`",
        Rule::timezone_stmt | Rule::kw_timezone => "`timezone`",
        Rule::status_stmt | Rule::kw_status | Rule::expect_status => "`status`",
        Rule::on_stmt | Rule::kw_on => "`on`",
        Rule::depends_stmt | Rule::kw_depends => "`depends on`",
        Rule::retain_stmt | Rule::kw_retain => "`retain`",
        Rule::aging_stmt | Rule::kw_aging => "`aging`",
        Rule::open_stmt | Rule::kw_open => "`open`",
        Rule::severity_set | Rule::kw_severity => "`severity`",
        Rule::runbook_set | Rule::kw_runbook => "`runbook`",
        Rule::notify_set | Rule::kw_notify => "`notify`",
        Rule::notify_filter | Rule::kw_when => "`when`",
        Rule::renotify_set | Rule::kw_renotify => "`renotify`",
        Rule::escalate_set | Rule::kw_escalate => "`escalate`",
        Rule::grace_set | Rule::kw_grace => "`grace`",
        Rule::expect_stmt | Rule::kw_expect | Rule::assertion => "`expect`",
        Rule::then_stmt | Rule::kw_then => "`then`",
        Rule::start_stmt | Rule::kw_start => "`start`",
        Rule::step_stmt | Rule::kw_step => "`step`",
        Rule::maybe | Rule::kw_maybe => "`maybe`",
        Rule::step_alias | Rule::kw_as => "`as`",
        Rule::where_clause | Rule::kw_where => "`where`",
        Rule::outcome => "`->`",
        Rule::after_clause | Rule::kw_after => "`after`",
        Rule::within_clause | Rule::kw_within => "`within`",
        Rule::by_clause | Rule::kw_by | Rule::advance_by | Rule::record_delay => "`by`",
        Rule::warn_clause | Rule::kw_warn => "`warn`",
        Rule::warn_at | Rule::kw_at | Rule::at_stmt | Rule::event_at => "`at`",
        Rule::not_before_clause | Rule::kw_not => "`not before`",
        Rule::kw_before => "`before`",
        Rule::clock_time => "a time of day such as `08:00`",
        Rule::every_clause | Rule::kw_every => "`every`",
        Rule::except_clause | Rule::kw_except => "`except`",
        Rule::secret_ref | Rule::kw_secret => "`secret(\"NAME\")`",
        Rule::weekly_window => "`every`",
        Rule::fixed_window => "`from`",
        Rule::kw_to | Rule::advance_to => "`to`",
        Rule::maintenance_for | Rule::kw_for | Rule::key_filter => "`for`",
        Rule::advance_stmt | Rule::kw_advance => "`advance`",
        Rule::event_stmt => "`event`",
        Rule::event_id | Rule::kw_id => "`id`",
        Rule::expect_alert | Rule::kw_alert | Rule::no_alert => "`alert`",
        Rule::expect_stage | Rule::kw_stage => "`stage`",
        Rule::expect_count | Rule::kw_count => "`count`",
        Rule::expect_no | Rule::kw_no => "`no`",
        Rule::expect_record => "a record kind such as `missing`",
        Rule::target => "a workflow or `workflow.step`",
        Rule::compare_op => "a comparison such as `==`",
        Rule::record_field => "a field such as `trade_id: \"T1\"`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::equals => "`=`",
        Rule::dot => "`.`",
        Rule::pipe => "`|`",
        Rule::arrow => "`->`",
        Rule::at_least => "`>=`",
        Rule::open_brace => "`{`",
        Rule::close_brace => "`}`",
        Rule::open_paren => "`(`",
        Rule::close_paren => "`)`",
        Rule::close_bracket => "`]`",
        Rule::EOI => "the end of the file",
        _ => "something else",
    }
}
