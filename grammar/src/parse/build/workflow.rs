//! Workflows: their statements, settings and steps with their clauses.

use pest::iterators::Pair;

use super::{Builder, Built, Rule};
use crate::ast::*;
use crate::error::SyntaxErrorKind;

/// What `warn` and `not before` take: a duration, or a clock time.
enum When {
    Relative(Duration),
    Clock(TimeOfDay, Option<Zone>),
}

impl Builder<'_> {
    pub(super) fn workflow_decl(&self, pair: Pair<Rule>) -> Built<WorkflowDecl> {
        let span = self.span(&pair);
        let mut inner = self.children(pair);
        let name = self.ident(inner.next("the workflow's name")?)?;
        let stmts = inner.map(|p| self.stmt(p)).collect::<Built<_>>()?;
        Ok(WorkflowDecl { doc: self.cx.doc(span.start), name, stmts, span, incomplete: false })
    }

    pub(super) fn stmt(&self, pair: Pair<Rule>) -> Built<Stmt> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::key_stmt => StmtKind::Key(self.key_fields(pair)?),
            Rule::group_stmt => StmtKind::GroupBy(self.idents(self.children(pair))?),
            Rule::cohort_stmt => StmtKind::Cohort(self.only(pair, "the cohort field", |p| self.ident(p))?),
            Rule::timezone_stmt => StmtKind::Timezone(self.only(pair, "a time zone", |p| self.zone(p))?),
            Rule::status_stmt => {
                let mut inner = self.children(pair);
                let color = self.ident(inner.next("the status color")?)?;
                let condition = self.expr(inner.next("the status condition")?)?;
                inner.done()?;
                StmtKind::Status { color, condition }
            }
            Rule::on_stmt => {
                let mut inner = self.children(pair);
                let case = self.ident(inner.next("the case")?)?;
                let action = self.ident(inner.next("the action")?)?;
                inner.done()?;
                StmtKind::On { case, action }
            }
            Rule::depends_stmt => StmtKind::DependsOn(self.idents(self.children(pair))?),
            Rule::retain_stmt => StmtKind::Retain(self.only(pair, "a duration", |p| self.duration(p))?),
            Rule::aging_stmt => StmtKind::Aging(self.children(pair).map(|p| self.duration(p)).collect::<Built<_>>()?),
            Rule::open_stmt => StmtKind::Open(self.only(pair, "a time of day", |p| self.time_of_day(p))?),
            Rule::expect_stmt | Rule::then_stmt | Rule::start_stmt | Rule::step_stmt => {
                StmtKind::Step(self.step_decl(pair)?)
            }
            _ => StmtKind::Setting(Setting { kind: self.setting(pair)?, span }),
        };
        Ok(Stmt { kind, span })
    }

    fn key_fields(&self, pair: Pair<Rule>) -> Built<Vec<KeyField>> {
        let mut fields: Vec<KeyField> = Vec::new();
        for p in self.children(pair) {
            let span = self.span(&p);
            match p.as_rule() {
                Rule::ident => fields.push(KeyField { name: self.ident(p)?, sources: Vec::new(), span }),
                Rule::key_mapping => {
                    let mut inner = self.children(p);
                    let name = self.ident(inner.next("the key's name")?)?;
                    let source = self.qualified(inner.next("the key's source")?)?;
                    inner.done()?;
                    fields.push(KeyField { name, sources: vec![source], span });
                }
                Rule::qualified => {
                    let source = self.qualified(p)?;
                    match fields.last_mut().filter(|f| !f.sources.is_empty()) {
                        Some(field) => {
                            field.span = field.span.to(span);
                            field.sources.push(source);
                        }
                        None => self.error(SyntaxErrorKind::UnnamedKeySource, span),
                    }
                }
                _ => return Err(self.unexpected(&p, "a key field")),
            }
        }
        Ok(fields)
    }

    fn qualified(&self, pair: Pair<Rule>) -> Built<QualifiedName> {
        let span = self.token(&pair, Rule::qualified)?;
        self.qualified_name(pair, span)
    }

    /// `qualifier.name`, from a `qualified` or a `path`.
    pub(super) fn qualified_name(&self, pair: Pair<Rule>, span: Span) -> Built<QualifiedName> {
        let mut inner = self.children(pair);
        let qualifier = self.ident(inner.next("the qualifier")?)?;
        let name = self.ident(inner.next("the qualified name")?)?;
        inner.done()?;
        Ok(QualifiedName { qualifier, name, span })
    }

    fn setting(&self, pair: Pair<Rule>) -> Built<SettingKind> {
        Ok(match pair.as_rule() {
            Rule::severity_set => SettingKind::Severity(self.only(pair, "a severity", |p| self.ident(p))?),
            Rule::runbook_set => SettingKind::Runbook(self.only(pair, "a runbook", |p| self.string(p))?),
            Rule::notify_set => {
                let mut channels = Vec::new();
                let mut min_severity = None;
                for p in self.children(pair) {
                    match p.as_rule() {
                        Rule::ident if min_severity.is_none() => channels.push(self.ident(p)?),
                        Rule::notify_filter => {
                            min_severity = Some(self.only(p, "a severity", |q| self.ident(q))?);
                        }
                        _ => return Err(self.unexpected(&p, "a channel or `when severity >=`")),
                    }
                }
                SettingKind::Notify { channels, min_severity }
            }
            Rule::renotify_set => SettingKind::Renotify(self.only(pair, "a duration", |p| self.duration(p))?),
            Rule::escalate_set => {
                let mut inner = self.children(pair);
                let after = self.duration(inner.next("a duration")?)?;
                let channel = self.ident(inner.next("a channel")?)?;
                inner.done()?;
                SettingKind::Escalate { after, channel }
            }
            Rule::grace_set => SettingKind::Grace(self.only(pair, "a duration", |p| self.duration(p))?),
            _ => return Err(self.unexpected(&pair, "a statement")),
        })
    }

    fn step_decl(&self, pair: Pair<Rule>) -> Built<StepDecl> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = self.children(pair);
        let mut form = match rule {
            Rule::expect_stmt => StepForm::Expect,
            Rule::then_stmt => StepForm::Then { maybe: false },
            Rule::start_stmt => StepForm::Start,
            _ => StepForm::Step,
        };
        if rule == Rule::then_stmt && inner.next_if(Rule::maybe).is_some() {
            form = StepForm::Then { maybe: true };
        }
        let mut name = None;
        if matches!(rule, Rule::start_stmt | Rule::step_stmt) {
            name = Some(self.ident(inner.next("the step's name")?)?);
        }
        let event = self.ident(inner.next("the step's event")?)?;
        let mut step = StepDecl {
            form,
            name,
            event,
            predicate: None,
            after: Vec::new(),
            clauses: Vec::new(),
            outcome: None,
            span,
        };
        for p in inner {
            let clause_span = self.span(&p);
            let kind = match p.as_rule() {
                Rule::step_alias => {
                    step.name = Some(self.only(p, "the step's name", |q| self.ident(q))?);
                    continue;
                }
                Rule::where_clause => {
                    step.predicate = Some(self.only(p, "a condition", |q| self.expr(q))?);
                    continue;
                }
                Rule::outcome => {
                    step.outcome = Some(self.only(p, "an outcome", |q| self.ident(q))?);
                    continue;
                }
                Rule::after_clause => {
                    step.after.extend(self.idents(self.children(p))?);
                    continue;
                }
                Rule::within_clause => ClauseKind::Within(self.only(p, "a duration", |q| self.duration(q))?),
                Rule::by_clause => {
                    let mut inner = self.children(p);
                    let time = self.time_of_day(inner.next("a time of day")?)?;
                    let zone = inner.next_if(Rule::zone).map(|z| self.zone(z)).transpose()?;
                    let day_offset = inner.next_if(Rule::day_offset).map(|q| self.day_offset(q)).transpose()?;
                    inner.done()?;
                    ClauseKind::By { time, zone, day_offset }
                }
                Rule::warn_clause => match self.relative_or_clock(p, Rule::warn_at, "a duration or `at`")? {
                    When::Relative(d) => ClauseKind::Warn(d),
                    When::Clock(time, zone) => ClauseKind::WarnAt { time, zone },
                },
                Rule::not_before_clause => {
                    match self.relative_or_clock(p, Rule::clock_time, "a duration or a time of day")? {
                        When::Relative(d) => ClauseKind::NotBefore(d),
                        When::Clock(time, zone) => ClauseKind::NotBeforeTime { time, zone },
                    }
                }
                Rule::every_clause => ClauseKind::Every(self.idents(self.children(p))?),
                Rule::except_clause => ClauseKind::Except(self.idents(self.children(p))?),
                Rule::open_stmt => ClauseKind::Open(self.only(p, "a time of day", |q| self.time_of_day(q))?),
                _ => ClauseKind::Setting(self.setting(p)?),
            };
            step.clauses.push(Clause { kind, span: clause_span });
        }
        Ok(step)
    }

    fn day_offset(&self, pair: Pair<Rule>) -> Built<(u32, Span)> {
        let span = self.token(&pair, Rule::day_offset)?;
        // `+Nd`: the grammar guarantees the sign and the unit around the digits.
        let text = pair.as_str();
        let digits = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
        let days = self.number::<u32>(digits, span);
        if days > 36_600 {
            self.error(SyntaxErrorKind::NumberOutOfRange, span);
        }
        Ok((days, span))
    }

    /// The one child of `warn` or `not before`: a duration, or a `clock`
    /// pair (`warn_at` or `clock_time`) with a time of day and a zone.
    fn relative_or_clock(&self, pair: Pair<Rule>, clock: Rule, expected: &str) -> Built<When> {
        let q = self.only(pair, expected, Ok)?;
        match q.as_rule() {
            Rule::duration => Ok(When::Relative(self.duration(q)?)),
            rule if rule == clock => {
                let (time, zone) = self.clock_time(q)?;
                Ok(When::Clock(time, zone))
            }
            _ => Err(self.unexpected(&q, expected)),
        }
    }

    /// A time of day and an optional zone, from `warn_at` or `clock_time`.
    fn clock_time(&self, pair: Pair<Rule>) -> Built<(TimeOfDay, Option<Zone>)> {
        let mut inner = self.children(pair);
        let time = self.time_of_day(inner.next("a time of day")?)?;
        let zone = inner.next_if(Rule::zone).map(|z| self.zone(z)).transpose()?;
        inner.done()?;
        Ok((time, zone))
    }
}
