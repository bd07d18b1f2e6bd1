//! Pairs to AST: the only module that touches pest's pairs.
//!
//! [`MonParser`] is derived from `mon.pest`; the builder walks the pairs it
//! produces and makes [`crate::ast`] nodes with spans in the file. The rest of
//! the parser asks this module to parse and build one piece of text (an item,
//! a block's header, one statement, or one statement with a token added or
//! removed by recovery, spans still in the file) and gets back a node or
//! pest's error, so that a change of the grammar's shape is met here and
//! nowhere else.
//!
//! The builder trusts nothing about the shape of the pairs: the grammar and
//! the builder are two descriptions of one language, and an edit to one can
//! miss the other. A pair it does not expect (a missing child, an extra one,
//! another rule) makes the piece an internal error at that pair's span,
//! never a panic, so that `parse` keeps its promise to return for every
//! input and the editor keeps working while the bug is reported.

use std::cell::{Cell, RefCell};
use std::iter::{Filter, Peekable};

use pest::iterators::{Pair, Pairs};
use pest::Parser;

use super::Context;
use crate::ast::*;
use crate::error::{SyntaxError, SyntaxErrorKind};

mod expr;
mod items;
mod literals;
mod test_block;
mod workflow;

#[derive(pest_derive::Parser)]
#[grammar = "mon.pest"]
struct MonParser;

/// What pest and the builder made of one piece of text.
pub(super) enum Parsed<T> {
    /// The node, and the problems inside it that did not stop it from being
    /// built (an invalid escape, a date that does not exist).
    Built(T, Vec<SyntaxError>),
    /// pest did not accept the text.
    Refused(pest::error::Error<Rule>),
    /// pest accepted the text but the builder could not make a node of it.
    /// The errors say why (the last one) and what was found before.
    Unbuilt(Vec<SyntaxError>),
}

/// The blocks that recovery re-parses statement by statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlockKind {
    Workflow,
    Event,
    Test,
}

/// What a block's header names: a workflow or an event, or a test's title.
pub(super) enum Head {
    Name(Ident),
    Title(StringLit),
}

/// One statement of a block, parsed on its own.
pub(super) enum Statement {
    Workflow(Stmt),
    Field(FieldDecl),
    Test(TestStmt),
}

/// Whether `text` holds only blanks, line breaks and comments.
pub(super) fn is_blank(text: &str) -> bool {
    MonParser::parse(Rule::blank, text).is_ok()
}

/// Parses `src[start..end]` as one top-level item.
pub(super) fn item(cx: Context, start: usize, end: usize) -> Parsed<Item> {
    piece(cx, Rule::item_only, Place { offset: start, edit: None }, end, |b, pair| b.item(pair))
}

/// Parses `src[start..end]` as the header of a block of `kind`, from its
/// keyword to just before its `{`, with `edit` made to it first if there is
/// one (recovery's repair of one token).
pub(super) fn head(cx: Context, kind: BlockKind, start: usize, end: usize, edit: Option<Edit>) -> Parsed<Head> {
    let place = Place { offset: start, edit };
    match kind {
        BlockKind::Workflow => piece(cx, Rule::workflow_head, place, end, |b, p| Ok(Head::Name(b.ident(p)?))),
        BlockKind::Event => piece(cx, Rule::event_head, place, end, |b, p| Ok(Head::Name(b.ident(p)?))),
        BlockKind::Test => piece(cx, Rule::test_head, place, end, |b, p| Ok(Head::Title(b.string(p)?))),
    }
}

/// Parses `src[start..end]` as one statement of a block of `kind`, with
/// `edit` made to it first if there is one (recovery's repair of one token).
pub(super) fn statement(
    cx: Context,
    kind: BlockKind,
    start: usize,
    end: usize,
    edit: Option<Edit>,
) -> Parsed<Statement> {
    let place = Place { offset: start, edit };
    match kind {
        BlockKind::Workflow => {
            piece(cx, Rule::workflow_stmt_only, place, end, |b, p| Ok(Statement::Workflow(b.stmt(p)?)))
        }
        BlockKind::Event => piece(cx, Rule::field_only, place, end, |b, p| Ok(Statement::Field(b.field(p)?))),
        BlockKind::Test => piece(cx, Rule::test_stmt_only, place, end, |b, p| Ok(Statement::Test(b.test_stmt(p)?))),
    }
}

/// One token inserted into a statement or removed from it, so that recovery
/// can try whether the statement parses that way: at offset `at` of the
/// file, `removed` bytes give way to `inserted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Edit {
    pub at: usize,
    pub removed: usize,
    pub inserted: &'static str,
}

/// Where the text pest parsed lies in the file: from `offset`, with `edit`
/// made to it.
#[derive(Clone, Copy)]
struct Place {
    offset: usize,
    edit: Option<Edit>,
}

impl Place {
    /// A span of the parsed text as a span of the file. Inserted text is in
    /// no span of the file: a span that ends in it ends where it was
    /// inserted, and one that starts in it starts there.
    fn span(&self, s: pest::Span) -> Span {
        let start = self.in_file(s.start(), false);
        Span::new(start, self.in_file(s.end(), true).max(start))
    }

    /// Position `pos` of the parsed text, as a position of the file. Where
    /// a token was removed, starts and ends map apart: a span that ends
    /// there ends before the token, one that starts there starts after it.
    fn in_file(&self, pos: usize, is_end: bool) -> usize {
        let pos = self.offset + pos;
        let Some(Edit { at, removed, inserted }) = self.edit else {
            return pos;
        };
        let after_insert = at + inserted.len();
        if pos < at || (is_end && pos == at) {
            pos
        } else if pos < after_insert || (is_end && pos == after_insert) {
            if is_end {
                at
            } else {
                at + removed
            }
        } else {
            pos - inserted.len() + removed
        }
    }
}

/// Parses the text from `place` to `end`, with `place`'s edit made, with
/// `rule`, one of the wrappers of mon.pest that hold a single node (after
/// its keyword, for a header) between the start and the end of the input,
/// and builds that node.
fn piece<'a, T>(
    cx: Context<'a>,
    rule: Rule,
    place: Place,
    end: usize,
    build: impl FnOnce(&Builder<'a>, Pair<Rule>) -> Built<T>,
) -> Parsed<T> {
    let start = place.offset;
    let edited;
    let text = match place.edit {
        None => &cx.src[start..end],
        Some(Edit { at, removed, inserted }) => {
            edited = format!("{}{inserted}{}", &cx.src[start..at], &cx.src[at + removed..end]);
            edited.as_str()
        }
    };
    let pairs = match MonParser::parse(rule, text) {
        Ok(pairs) => pairs,
        Err(err) => return Parsed::Refused(err),
    };
    let builder = Builder { place, cx, errors: RefCell::new(Vec::new()), depth: Cell::new(0) };
    let built = (|| {
        let mut wrapper = Children::of_all(rule, Span::new(start, end), place, pairs);
        let wrapper = wrapper.next("the rule's own pair")?;
        let mut children = builder.children(wrapper);
        let node = children.next("a node")?;
        children.next_if(Rule::EOI);
        children.done()?;
        build(&builder, node)
    })();
    let mut errors = builder.errors.into_inner();
    match built {
        Ok(value) => Parsed::Built(value, errors),
        Err(error) => {
            errors.push(error);
            Parsed::Unbuilt(errors)
        }
    }
}

/// A node, or the internal error that stopped it from being built.
type Built<T> = Result<T, SyntaxError>;

/// The rule and span of a pair whose children are being built, for errors.
type Parent = (Rule, Span);

/// The children of `parent` ended before `expected`.
fn ended(parent: Parent, expected: &str) -> SyntaxError {
    internal(expected, format!("the end of `{:?}`", parent.0), parent.1)
}

/// The grammar and the builder disagree: a bug in mon, not in the rule file.
fn internal(expected: &str, found: String, span: Span) -> SyntaxError {
    SyntaxError { kind: SyntaxErrorKind::Internal { expected: expected.to_string(), found }, span }
}

/// Whether a child carries meaning for the tree: keywords and punctuation
/// (rules only so that pest reports them, see the end of mon.pest) do not.
fn carries_meaning(pair: &Pair<Rule>) -> bool {
    !is_punctuation(pair.as_rule()) && !format!("{:?}", pair.as_rule()).starts_with("kw_")
}

/// The punctuation rules of mon.pest.
fn is_punctuation(rule: Rule) -> bool {
    punctuation(rule).is_some()
}

/// The text of a punctuation rule of mon.pest.
pub(super) fn punctuation(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::colon => ":",
        Rule::comma => ",",
        Rule::equals => "=",
        Rule::dot => ".",
        Rule::pipe => "|",
        Rule::arrow => "->",
        Rule::at_least => ">=",
        Rule::open_brace => "{",
        Rule::close_brace => "}",
        Rule::open_paren => "(",
        Rule::close_paren => ")",
        Rule::close_bracket => "]",
        _ => return None,
    })
}

/// The children of one pair without its keywords and punctuation, taken one by one as
/// the grammar promises them.
struct Children<'i> {
    /// The parent's rule and span (in the file), for errors.
    rule: Rule,
    span: Span,
    /// Where the parsed text lies in the file.
    place: Place,
    pairs: Peekable<Meaningful<'i>>,
}

type Meaningful<'i> = Filter<Pairs<'i, Rule>, fn(&Pair<'i, Rule>) -> bool>;

impl<'i> Children<'i> {
    fn of_all(rule: Rule, span: Span, place: Place, pairs: Pairs<'i, Rule>) -> Self {
        let meaningful: fn(&Pair<'i, Rule>) -> bool = carries_meaning;
        Children { rule, span, place, pairs: pairs.filter(meaningful).peekable() }
    }

    /// The next child, which the grammar promises: `expected` says what it
    /// should be.
    fn next(&mut self, expected: &str) -> Built<Pair<'i, Rule>> {
        match self.pairs.next() {
            Some(pair) => Ok(pair),
            None => Err(ended((self.rule, self.span), expected)),
        }
    }

    /// The next child if it is a `rule`.
    fn next_if(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        self.pairs.next_if(|p| p.as_rule() == rule)
    }

    /// Every child taken: one more is something the grammar gives and the
    /// builder would silently drop.
    fn done(mut self) -> Built<()> {
        match self.pairs.next() {
            None => Ok(()),
            Some(pair) => Err(unexpected(self.place, &pair, &format!("the end of `{:?}`", self.rule))),
        }
    }
}

impl<'i> Iterator for Children<'i> {
    type Item = Pair<'i, Rule>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pairs.next()
    }
}

/// `pair` is not what the builder expected there.
fn unexpected(place: Place, pair: &Pair<Rule>, expected: &str) -> SyntaxError {
    internal(expected, format!("`{:?}`", pair.as_rule()), place.span(pair.as_span()))
}

/// Turns the pairs of one piece of text into AST nodes, with spans in the
/// file.
struct Builder<'a> {
    place: Place,
    cx: Context<'a>,
    /// Problems that do not stop a node from being built.
    errors: RefCell<Vec<SyntaxError>>,
    /// How many brackets and prefix operators enclose the expression being
    /// built: the depth of the builder's recursion, kept under `MAX_DEPTH`.
    depth: Cell<usize>,
}

impl<'a> Builder<'a> {
    /// The pair's span in the file, without the blanks and comments that
    /// pest lets a rule end with when its optional tail is absent.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let Span { start, mut end } = self.place.span(pair.as_span());
        loop {
            end = start + self.cx.src[start..end].trim_end().len();
            match self.cx.comments.binary_search_by(|c| c.span.end.cmp(&end)) {
                Ok(i) if self.cx.comments[i].span.start >= start => end = self.cx.comments[i].span.start,
                _ => break,
            }
        }
        Span::new(start, end)
    }

    fn error(&self, kind: SyntaxErrorKind, span: Span) {
        self.errors.borrow_mut().push(SyntaxError { kind, span });
    }

    fn children<'i>(&self, pair: Pair<'i, Rule>) -> Children<'i> {
        Children::of_all(pair.as_rule(), self.span(&pair), self.place, pair.into_inner())
    }

    /// `pair` is not what the builder expected there.
    fn unexpected(&self, pair: &Pair<Rule>, expected: &str) -> SyntaxError {
        unexpected(self.place, pair, expected)
    }

    /// The span of `pair`, which must be a `rule`.
    fn token(&self, pair: &Pair<Rule>, rule: Rule) -> Built<Span> {
        if pair.as_rule() == rule {
            Ok(self.span(pair))
        } else {
            Err(self.unexpected(pair, &format!("`{rule:?}`")))
        }
    }

    fn ident(&self, pair: Pair<Rule>) -> Built<Ident> {
        let span = self.token(&pair, Rule::ident)?;
        Ok(Ident { name: pair.as_str().to_string(), span })
    }

    fn idents(&self, pairs: impl Iterator<Item = Pair<'a, Rule>>) -> Built<Vec<Ident>> {
        pairs.map(|p| self.ident(p)).collect()
    }

    fn item(&self, pair: Pair<Rule>) -> Built<Item> {
        Ok(match pair.as_rule() {
            Rule::event_decl => Item::Event(self.event_decl(pair)?),
            Rule::workflow_decl => Item::Workflow(self.workflow_decl(pair)?),
            Rule::channel_decl => Item::Channel(self.channel_decl(pair)?),
            Rule::calendar_decl => Item::Calendar(self.calendar_decl(pair)?),
            Rule::maintenance_decl => Item::Maintenance(self.maintenance_decl(pair)?),
            Rule::test_decl => Item::Test(self.test_decl(pair)?),
            _ => return Err(self.unexpected(&pair, "a declaration")),
        })
    }

    /// One child of `pair` and no more, built by `build`.
    fn only<'i, T>(
        &self,
        pair: Pair<'i, Rule>,
        what: &str,
        build: impl FnOnce(Pair<'i, Rule>) -> Built<T>,
    ) -> Built<T> {
        let mut inner = self.children(pair);
        let value = build(inner.next(what)?)?;
        inner.done()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    //! Grammar drift cannot be produced from the grammar itself, so these
    //! tests hand the builder pairs of the wrong shape on purpose.

    use super::*;

    pub(super) fn builder(src: &str) -> Builder<'_> {
        let place = Place { offset: 0, edit: None };
        Builder { place, cx: Context { src, comments: &[] }, errors: RefCell::new(Vec::new()), depth: Cell::new(0) }
    }

    pub(super) fn pair(rule: Rule, src: &str) -> Pair<'_, Rule> {
        MonParser::parse(rule, src).expect("the test's text parses").next().expect("a pair")
    }

    pub(super) fn internal_error<T: std::fmt::Debug>(built: Built<T>) -> (String, String, Span) {
        match built {
            Err(SyntaxError { kind: SyntaxErrorKind::Internal { expected, found }, span }) => (expected, found, span),
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn a_child_of_another_rule_is_an_internal_error() {
        let src = "x: int";
        let (expected, found, span) = internal_error(builder(src).event_decl(pair(Rule::field, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("`from` or the event's fields", "`type_expr`"));
        assert_eq!(span, Span::new(3, 6));
    }

    #[test]
    fn a_missing_child_is_an_internal_error_at_its_parent() {
        let src = "42";
        let (expected, found, span) = internal_error(builder(src).workflow_decl(pair(Rule::int, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("the workflow's name", "the end of `int`"));
        assert_eq!(span, Span::new(0, 2));
    }

    #[test]
    fn a_child_the_builder_would_drop_is_an_internal_error() {
        let src = "on duplicate flag";
        let b = builder(src);
        let (_, found, span) = internal_error(b.only(pair(Rule::on_stmt, src), "the case", |p| b.ident(p)));
        assert_eq!(found, "`ident`");
        assert_eq!(span, Span::new(13, 17));
    }

    #[test]
    fn a_leaf_of_another_rule_is_an_internal_error() {
        let src = "\"x\"";
        let (expected, found, _) = internal_error(builder(src).ident(pair(Rule::string, src)));
        assert_eq!((expected.as_str(), found.as_str()), ("`ident`", "`string`"));
    }
}
