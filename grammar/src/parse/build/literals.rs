//! The leaves of the tree: numbers, strings with their escapes, durations,
//! times of day, dates, timestamps and zones. `crate::literal` reads the
//! text of durations, times and dates; this reports what is wrong with it
//! at its span.

use pest::iterators::Pair;

use super::{Builder, Built, Rule};
use crate::ast::*;
use crate::error::SyntaxErrorKind;
use crate::literal;

impl Builder<'_> {
    pub(super) fn number<T: std::str::FromStr + Default>(&self, text: &str, span: Span) -> T {
        let digits: String = text.chars().filter(|&c| c != '_').collect();
        digits.parse().unwrap_or_else(|_| {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
            T::default()
        })
    }

    pub(super) fn string(&self, pair: Pair<Rule>) -> Built<StringLit> {
        let span = self.token(&pair, Rule::string)?;
        let raw = pair.into_inner().next().map_or("", |p| p.as_str());
        // The raw text starts one byte (the quote) after the literal.
        let raw_start = span.start + 1;
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            let Some((j, escaped)) = chars.next() else { break };
            let escape_span = Span::new(raw_start + i, raw_start + j + escaped.len_utf8());
            match escaped {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '"' | '\\' => value.push(escaped),
                'u' if chars.peek().is_some_and(|&(_, c)| c == '{') => {
                    chars.next();
                    let mut hex = String::new();
                    let mut end = j + 2;
                    for (k, c) in chars.by_ref() {
                        end = k + c.len_utf8();
                        if c == '}' {
                            break;
                        }
                        hex.push(c);
                    }
                    let span = Span::new(raw_start + i, raw_start + end);
                    match u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() <= 6).and_then(char::from_u32) {
                        Some(c) => value.push(c),
                        None => self.error(
                            SyntaxErrorKind::InvalidEscape { escape: self.cx.src[span.start..span.end].to_string() },
                            span,
                        ),
                    }
                }
                other => {
                    self.error(SyntaxErrorKind::InvalidEscape { escape: format!("\\{other}") }, escape_span);
                    value.push(other);
                }
            }
        }
        Ok(StringLit { value, span })
    }

    pub(super) fn duration(&self, pair: Pair<Rule>) -> Built<Duration> {
        let span = self.token(&pair, Rule::duration)?;
        let text = pair.as_str();
        let value = literal::read_duration(text);
        if value.units_out_of_order && !value.overflow {
            let suggestion = Some(literal::format_duration(value.millis));
            self.error(SyntaxErrorKind::InvalidDuration { written: text.to_string(), suggestion }, span);
        }
        if value.out_of_range() {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Ok(Duration { millis: value.millis, span })
    }

    pub(super) fn time_of_day(&self, pair: Pair<Rule>) -> Built<TimeOfDay> {
        let span = self.token(&pair, Rule::time_of_day)?;
        let (hour, minute, second, valid) = literal::read_time_of_day(pair.as_str());
        if !valid {
            self.error(SyntaxErrorKind::InvalidTimeOfDay, span);
        }
        Ok(TimeOfDay { hour, minute, second, span })
    }

    pub(super) fn date(&self, pair: Pair<Rule>) -> Built<Date> {
        let span = self.token(&pair, Rule::date)?;
        let (year, month, day, valid) = literal::read_date(pair.as_str());
        if !valid {
            self.error(SyntaxErrorKind::InvalidDate, span);
        }
        Ok(Date { year, month, day, span })
    }

    pub(super) fn timestamp(&self, pair: Pair<Rule>) -> Built<Timestamp> {
        let span = self.token(&pair, Rule::timestamp)?;
        Ok(Timestamp { text: pair.as_str().to_string(), span })
    }

    pub(super) fn zone(&self, pair: Pair<Rule>) -> Built<Zone> {
        let span = self.token(&pair, Rule::zone)?;
        Ok(Zone { name: pair.as_str().to_string(), span })
    }
}
