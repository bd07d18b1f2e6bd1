//! Declarations other than workflows and tests: events and their fields,
//! channels, calendars and maintenance windows.

use pest::iterators::Pair;

use super::{Builder, Built, Rule};
use crate::ast::*;

impl Builder<'_> {
    pub(super) fn event_decl(&self, pair: Pair<Rule>) -> Built<EventDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the event's name")?)?;
        let body_pair = inner.next("the event's body")?;
        inner.done()?;
        let body = match body_pair.as_rule() {
            Rule::event_schema => {
                let mut schema = self.children(body_pair);
                let path = self.string(schema.next("the schema's path")?)?;
                schema.done()?;
                EventBody::Schema(path)
            }
            Rule::event_fields => {
                EventBody::Fields(self.children(body_pair).map(|f| self.field(f)).collect::<Built<_>>()?)
            }
            _ => return Err(self.unexpected(&body_pair, "`from` or the event's fields")),
        };
        Ok(EventDecl { doc: self.cx.doc(span.start), name, body, span })
    }

    pub(super) fn field(&self, pair: Pair<Rule>) -> Built<FieldDecl> {
        let span = self.token(&pair, Rule::field)?;
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the field's name")?)?;
        let ty = self.type_expr(inner.next("the field's type")?)?;
        let pii = inner.next_if(Rule::pii).is_some();
        inner.done()?;
        Ok(FieldDecl { doc: self.cx.doc(span.start), name, ty, pii, span })
    }

    fn type_expr(&self, pair: Pair<Rule>) -> Built<TypeExpr> {
        let span = self.token(&pair, Rule::type_expr)?;
        let mut inner = self.children(pair);
        let kind_pair = inner.next("a type")?;
        let kind = match kind_pair.as_rule() {
            Rule::named_type => {
                let mut named = self.children(kind_pair);
                let name = self.ident(named.next("the type's name")?)?;
                named.done()?;
                TypeKind::Named(name)
            }
            Rule::enum_type => TypeKind::Enum(self.idents(self.children(kind_pair))?),
            _ => return Err(self.unexpected(&kind_pair, "a named type or an enum")),
        };
        let optional = inner.next_if(Rule::optional).is_some();
        inner.done()?;
        Ok(TypeExpr { kind, optional, span })
    }

    pub(super) fn channel_decl(&self, pair: Pair<Rule>) -> Built<ChannelDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the channel's name")?)?;
        let kind = self.ident(inner.next("the channel's kind")?)?;
        let targets = inner
            .map(|p| match p.as_rule() {
                Rule::secret_ref => Ok(ChannelTarget::Secret(self.only(p, "the secret's name", |q| self.string(q))?)),
                _ => Ok(ChannelTarget::Literal(self.string(p)?)),
            })
            .collect::<Built<_>>()?;
        Ok(ChannelDecl { doc: self.cx.doc(span.start), name, kind, targets, span })
    }

    pub(super) fn calendar_decl(&self, pair: Pair<Rule>) -> Built<CalendarDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the calendar's name")?)?;
        let dates = inner.map(|p| self.date(p)).collect::<Built<_>>()?;
        Ok(CalendarDecl { doc: self.cx.doc(span.start), name, dates, span })
    }

    pub(super) fn maintenance_decl(&self, pair: Pair<Rule>) -> Built<MaintenanceDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the window's name")?)?;
        let window_pair = inner.next("the window")?;
        let window = match window_pair.as_rule() {
            Rule::weekly_window => {
                let mut window = self.children(window_pair);
                let from_day = window.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
                let from = self.time_of_day(window.next("the window's start")?)?;
                let to_day = window.next_if(Rule::ident).map(|p| self.ident(p)).transpose()?;
                let to = self.time_of_day(window.next("the window's end")?)?;
                let zone = window.next_if(Rule::zone).map(|p| self.zone(p)).transpose()?;
                window.done()?;
                MaintenanceWindow::Weekly { from_day, from, to_day, to, zone }
            }
            Rule::fixed_window => {
                let mut window = self.children(window_pair);
                let from = self.timestamp(window.next("the window's start")?)?;
                let to = self.timestamp(window.next("the window's end")?)?;
                window.done()?;
                MaintenanceWindow::Fixed { from, to }
            }
            _ => return Err(self.unexpected(&window_pair, "a window")),
        };
        let workflows = match inner.next_if(Rule::maintenance_for) {
            Some(p) => self.idents(self.children(p))?,
            None => Vec::new(),
        };
        inner.done()?;
        Ok(MaintenanceDecl { doc: self.cx.doc(span.start), name, window, workflows, span })
    }
}
