//! Expressions: precedence climbing over the flat operands and operators
//! pest gives for an `expr`, with nesting kept within `MAX_DEPTH`.

use std::iter::Peekable;

use pest::iterators::{Pair, Pairs};

use super::{ended, internal, Builder, Built, Children, Parent, Rule};
use crate::ast::*;
use crate::parse::{too_deep, MAX_DEPTH};

/// Where an operator of mon.pest's `expr` goes: before its operand, or
/// between two.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fixity {
    Prefix,
    Infix,
}

/// The operators and how tightly they bind, loosest first: `not a == b`
/// is `not (a == b)`, `-a ?? b` is `(-a) ?? b`. Every binary operator is
/// left-associative. Anything else in an `expr` is an operand.
fn operator(rule: Rule) -> Option<(Fixity, u8)> {
    Some(match rule {
        Rule::op_or => (Fixity::Infix, 10),
        Rule::op_and => (Fixity::Infix, 20),
        Rule::op_not => (Fixity::Prefix, 30),
        Rule::op_eq
        | Rule::op_ne
        | Rule::op_lt
        | Rule::op_le
        | Rule::op_gt
        | Rule::op_ge
        | Rule::op_in
        | Rule::op_not_in => (Fixity::Infix, 40),
        Rule::op_add | Rule::op_sub => (Fixity::Infix, 50),
        Rule::op_mul | Rule::op_div => (Fixity::Infix, 60),
        Rule::op_coalesce => (Fixity::Infix, 70),
        Rule::op_neg => (Fixity::Prefix, 80),
        _ => return None,
    })
}

fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_in => BinaryOp::In,
        Rule::op_not_in => BinaryOp::NotIn,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        Rule::op_coalesce => BinaryOp::Coalesce,
        _ => return None,
    })
}

/// A bracketed expression while its contents are built.
struct Bracket {
    rule: Rule,
    span: Span,
    /// The opening bracket.
    open: Span,
    /// The function's name, for a call.
    function: Option<Ident>,
}

impl Builder<'_> {
    pub(super) fn expr(&self, pair: Pair<Rule>) -> Built<Expr> {
        Ok(self.tall_expr(pair)?.0)
    }

    // The functions from here to `tall_exprs` call each other once per level of
    // nesting. They are kept small, with the bulk of the work in helpers
    // that return before the next level starts: in a debug build every
    // temporary of a function takes stack for as long as it runs, and
    // `MAX_DEPTH` levels must fit in a 2 MiB thread.

    /// An expression and its height (a literal is 1 high, `a + b` 2). The
    /// height is kept at most `MAX_DEPTH` so that whatever walks the tree
    /// recursively later (the checker, the formatter, `Drop`) fits in an
    /// ordinary thread's stack; a long chain such as `a or b or ...` is as
    /// high as it is long.
    fn tall_expr(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let parent = self.expr_parent(&pair)?;
        let mut pairs = pair.into_inner().peekable();
        let built = self.climb(&mut pairs, 0, parent)?;
        self.no_more(pairs.next())?;
        Ok(built)
    }

    /// Precedence climbing over the flat children of an `expr` (`prefix*
    /// primary (infix prefix* primary)*`): an operand and then every
    /// operator that binds more tightly than `min`, each with its right
    /// operand. A chain of one precedence is a loop, not a recursion.
    fn climb<'i>(&self, pairs: &mut Peekable<Pairs<'i, Rule>>, min: u8, parent: Parent) -> Built<(Expr, usize)> {
        let mut lhs = self.operand(pairs, parent)?;
        while let Some(power) = self.binds_tighter(pairs.peek(), min)? {
            lhs = self.infix(lhs, power, pairs, parent)?;
        }
        Ok(lhs)
    }

    /// A primary, or a prefix operator and the operand it binds.
    fn operand<'i>(&self, pairs: &mut Peekable<Pairs<'i, Rule>>, parent: Parent) -> Built<(Expr, usize)> {
        let Some(pair) = pairs.next() else {
            return Err(ended(parent, "an operand"));
        };
        match operator(pair.as_rule()) {
            None => self.primary(pair),
            Some((Fixity::Prefix, power)) => self.prefixed(pair, power, pairs, parent),
            Some((Fixity::Infix, _)) => Err(self.unexpected(&pair, "an operand")),
        }
    }

    fn primary(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        match pair.as_rule() {
            Rule::paren | Rule::list | Rule::call => self.bracketed(pair),
            _ => self.atom(pair),
        }
    }

    /// `( e )`, `[ e, ... ]` or `f( e, ... )`.
    fn bracketed(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let (bracket, inner) = self.open_bracket(pair)?;
        self.enter(bracket.open)?;
        let items = self.tall_exprs(inner);
        self.leave();
        self.close_bracket(bracket, items)
    }

    /// Expressions and the height of the tallest.
    fn tall_exprs<'i>(&self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Built<(Vec<Expr>, usize)> {
        let mut exprs = Vec::new();
        let mut height = 0;
        for pair in pairs {
            let (expr, h) = self.tall_expr(pair)?;
            exprs.push(expr);
            height = height.max(h);
        }
        Ok((exprs, height))
    }

    // ------------------------------------------------------------ expression helpers

    /// The rule and span of an `expr` pair, for errors about its children.
    fn expr_parent(&self, pair: &Pair<Rule>) -> Built<Parent> {
        match pair.as_rule() {
            rule @ (Rule::expr | Rule::expr_in) => Ok((rule, self.span(pair))),
            _ => Err(self.unexpected(pair, "an expression")),
        }
    }

    /// Nothing may follow a finished expression but the end of its pair.
    fn no_more(&self, extra: Option<Pair<Rule>>) -> Built<()> {
        match extra {
            None => Ok(()),
            Some(pair) => Err(self.unexpected(&pair, "an operator")),
        }
    }

    /// The binding power of `next` when it is an operator that binds more
    /// tightly than `min`; `None` to end the operand.
    fn binds_tighter(&self, next: Option<&Pair<Rule>>, min: u8) -> Built<Option<u8>> {
        let Some(pair) = next else { return Ok(None) };
        match operator(pair.as_rule()) {
            Some((Fixity::Infix, power)) => Ok((power > min).then_some(power)),
            _ => Err(self.unexpected(pair, "an operator")),
        }
    }

    /// `lhs`, the binary operator next in `pairs`, and its right operand.
    fn infix<'i>(
        &self,
        (lhs, lhs_height): (Expr, usize),
        power: u8,
        pairs: &mut Peekable<Pairs<'i, Rule>>,
        parent: Parent,
    ) -> Built<(Expr, usize)> {
        let Some(op_pair) = pairs.next() else {
            return Err(ended(parent, "an operator"));
        };
        let op_span = self.span(&op_pair);
        let op = binary_op(op_pair.as_rule()).ok_or_else(|| self.unexpected(&op_pair, "a binary operator"))?;
        let (rhs, rhs_height) = self.climb(pairs, power, parent)?;
        let height = self.taller(lhs_height.max(rhs_height), op_span)?;
        let span = lhs.span.to(rhs.span);
        Ok((Expr { kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span }, height))
    }

    /// The prefix operator `op_pair` and the operand it binds.
    fn prefixed<'i>(
        &self,
        op_pair: Pair<Rule>,
        power: u8,
        pairs: &mut Peekable<Pairs<'i, Rule>>,
        parent: Parent,
    ) -> Built<(Expr, usize)> {
        let op_span = self.span(&op_pair);
        let op = if op_pair.as_rule() == Rule::op_not { UnaryOp::Not } else { UnaryOp::Neg };
        self.enter(op_span)?;
        let operand = self.climb(pairs, power - 1, parent);
        self.leave();
        let (operand, height) = operand?;
        let height = self.taller(height, op_span)?;
        let span = op_span.to(operand.span);
        Ok((Expr { kind: ExprKind::Unary { op, operand: Box::new(operand) }, span }, height))
    }

    /// What a bracketed expression is before its contents are built.
    fn open_bracket<'i>(&self, pair: Pair<'i, Rule>) -> Built<(Bracket, Children<'i>)> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let function = match rule {
            Rule::call => Some(self.ident(inner.next("the function's name")?)?),
            _ => None,
        };
        let at = function.as_ref().map_or(span.start, |f| f.span.end);
        Ok((Bracket { rule, span, open: Span::new(at, at + 1), function }, inner))
    }

    /// The node a bracket makes of what it holds.
    fn close_bracket(&self, bracket: Bracket, items: Built<(Vec<Expr>, usize)>) -> Built<(Expr, usize)> {
        let (mut items, height) = items?;
        let height = self.taller(height, bracket.open)?;
        let Bracket { rule, span, function, .. } = bracket;
        let kind = match (rule, function) {
            (Rule::call, Some(function)) => ExprKind::Call { function, args: items },
            (Rule::list, None) => ExprKind::List(items),
            (Rule::paren, None) if items.len() == 1 => match items.pop() {
                Some(inner) => ExprKind::Paren(Box::new(inner)),
                None => return Err(internal("an expression", format!("the end of `{rule:?}`"), span)),
            },
            _ => return Err(internal("one expression", format!("{} in `{rule:?}`", items.len()), span)),
        };
        Ok((Expr { kind, span }, height))
    }

    /// One level further in (inside a bracket, or after a prefix operator at
    /// `span`), refused past `MAX_DEPTH`: this bounds the builder's own
    /// recursion before it happens, where the height check can only look
    /// back. Every `enter` that succeeds is followed by a `leave`.
    fn enter(&self, span: Span) -> Built<()> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(span));
        }
        self.depth.set(depth);
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// The height of a node over children at most `below` high; an error
    /// at `span` (the node's operator or bracket) past `MAX_DEPTH`.
    fn taller(&self, below: usize, span: Span) -> Built<usize> {
        if below + 1 > MAX_DEPTH {
            return Err(too_deep(span));
        }
        Ok(below + 1)
    }

    /// An operand without operands inside: a name, a path or a literal.
    fn atom(&self, pair: Pair<Rule>) -> Built<(Expr, usize)> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::path => ExprKind::Path(self.qualified_name(pair, span)?),
            Rule::ident => ExprKind::Name(self.ident(pair)?),
            Rule::int => ExprKind::Literal(Literal::Int(self.number(pair.as_str(), span))),
            Rule::float => ExprKind::Literal(Literal::Float(self.number(pair.as_str(), span))),
            Rule::string => ExprKind::Literal(Literal::String(self.string(pair)?.value)),
            Rule::boolean => ExprKind::Literal(Literal::Bool(pair.as_str() == "true")),
            Rule::duration => ExprKind::Literal(Literal::Duration(self.duration(pair)?.millis)),
            Rule::date => {
                let d = self.date(pair)?;
                ExprKind::Literal(Literal::Date { year: d.year, month: d.month, day: d.day })
            }
            Rule::time_of_day => {
                let t = self.time_of_day(pair)?;
                ExprKind::Literal(Literal::TimeOfDay { hour: t.hour, minute: t.minute, second: t.second })
            }
            Rule::timestamp => ExprKind::Literal(Literal::Timestamp(pair.as_str().to_string())),
            _ => return Err(self.unexpected(&pair, "an operand")),
        };
        Ok((Expr { kind, span }, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{builder, internal_error, pair};
    use super::*;

    #[test]
    fn operands_out_of_turn_are_an_internal_error() {
        // Two operands in a row, as no `expr` has them: a name, then a target.
        let src = "missing w";
        let mut pairs = pair(Rule::expect_record, src).into_inner().peekable();
        let parent: Parent = (Rule::expr, Span::new(0, 9));
        let (expected, found, span) = internal_error(builder(src).climb(&mut pairs, 0, parent));
        assert_eq!((expected.as_str(), found.as_str(), span), ("an operator", "`target`", Span::new(8, 9)));
    }

    /// The tree of an expression in prefix notation: `(or a (and b c))`.
    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Name(name) => name.name.clone(),
            ExprKind::Paren(inner) => shape(inner),
            ExprKind::Unary { op, operand } => {
                format!("({} {})", if *op == UnaryOp::Not { "not" } else { "neg" }, shape(operand))
            }
            ExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", op.symbol(), shape(lhs), shape(rhs)),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn operators_bind_as_the_spec_reads() {
        for (src, expected) in [
            ("a or b and c", "(or a (and b c))"),
            ("a - b - c", "(- (- a b) c)"),
            ("not a == b", "(not (== a b))"),
            ("a and not b or c", "(or (and a (not b)) c)"),
            ("-a ?? b * c", "(* (?? (neg a) b) c)"),
            ("a + b * c == d not in e", "(not in (== (+ a (* b c)) d) e)"),
            ("not not a", "(not (not a))"),
            ("a == -b", "(== a (neg b))"),
        ] {
            let built = builder(src).expr(pair(Rule::expr, src)).expect("builds");
            assert_eq!(shape(&built), expected, "{src}");
        }
    }
}
