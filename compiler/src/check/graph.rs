//! The shape of a workflow's state machine: the stages each step leaves,
//! the stages it leads into and which of them close the instance, steps
//! that can never match or never be reached, and steps after a closing
//! stage.

use std::collections::{BTreeSet, HashMap};

use mon_grammar::ast::{self, StepForm};

use super::workflow::is_start;
use super::Checker;
use crate::diagnostics::{DiagnosticKind, Misplaced, NeverMatch};
use crate::expr::conjuncts;
use crate::ir::{self, Outcome, Value};
use crate::suggest::did_you_mean;

impl<'a> Checker<'a> {
    /// The stages each step leaves.
    pub(super) fn step_sources(
        &mut self,
        file: usize,
        decl: &ast::WorkflowDecl,
        steps: &[&ast::StepDecl],
        names: &HashMap<&str, usize>,
    ) -> Vec<Vec<usize>> {
        let mut sources: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let mut from: Vec<usize> = Vec::new();
            match step.form {
                StepForm::Expect | StepForm::Start => {
                    if let Some(first) = step.after.first() {
                        self.report(file, first.span, DiagnosticKind::Misplaced(Misplaced::AfterOnLinearOrStart));
                    }
                }
                StepForm::Then { .. } => {
                    if let Some(first) = step.after.first() {
                        self.report(file, first.span, DiagnosticKind::Misplaced(Misplaced::AfterOnLinearOrStart));
                    }
                    if i == 0 {
                        if !decl.incomplete {
                            self.report(file, step.span, DiagnosticKind::Misplaced(Misplaced::ThenWithoutPrevious));
                        }
                    } else {
                        // After an optional step, the next one may also
                        // follow whatever the optional step follows.
                        from.push(i - 1);
                        if matches!(steps[i - 1].form, StepForm::Then { maybe: true }) {
                            from.extend(sources[i - 1].iter().copied());
                        }
                    }
                }
                StepForm::Step => {
                    if step.after.is_empty() {
                        self.report(file, step.span, DiagnosticKind::Misplaced(Misplaced::StepWithoutAfter));
                    }
                    for stage in &step.after {
                        match names.get(stage.name.as_str()) {
                            Some(&j) if j == i => {
                                self.report(file, stage.span, DiagnosticKind::Misplaced(Misplaced::AfterItself))
                            }
                            Some(&j) => from.push(j),
                            None if decl.incomplete => {}
                            None => {
                                let suggestion = did_you_mean(&stage.name, names.keys().copied());
                                self.report(
                                    file,
                                    stage.span,
                                    DiagnosticKind::UnknownStage {
                                        name: stage.name.clone(),
                                        workflow: decl.name.name.clone(),
                                        suggestion,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            from.sort_unstable();
            from.dedup();
            sources.push(from);
        }
        sources
    }

    /// One stage per step (the stage the step leads into): the steps that
    /// leave it, the timers entering it arms, and whether it closes the
    /// instance. A step after a closing stage is reported (E410).
    pub(super) fn stages(&mut self, file: usize, step_decls: &[&ast::StepDecl], steps: &[ir::Step]) -> Vec<ir::Stage> {
        let mut stages: Vec<ir::Stage> = steps
            .iter()
            .map(|s| ir::Stage {
                id: s.id,
                name: s.name.clone(),
                outgoing: Vec::new(),
                timers: Vec::new(),
                closes: None,
            })
            .collect();
        for step in steps {
            for &source in &step.sources {
                stages[source as usize].outgoing.push(step.id);
                let timed = step.timing.has_deadline() || step.timing.warn.is_some();
                if timed {
                    stages[source as usize].timers.push(step.id);
                }
            }
        }
        for (i, stage) in stages.iter_mut().enumerate() {
            // A stage followed only by optional steps ends the flow: the
            // optional step may still come and fills in.
            let only_optional = stage.outgoing.iter().all(|&n| steps[n as usize].optional);
            stage.closes = match (steps[i].outcome, only_optional) {
                (Some(outcome), _) => Some(outcome),
                (None, true) => Some(Outcome::Success),
                (None, false) => None,
            };
        }
        for stage in &stages {
            if steps[stage.id as usize].outcome.is_some() && !stage.outgoing.iter().all(|&n| steps[n as usize].optional)
            {
                for &next in &stage.outgoing {
                    let decl = step_decls[next as usize];
                    let span = decl.after.iter().find(|a| a.name == stage.name).map_or(decl.span, |a| a.span);
                    self.report(
                        file,
                        span,
                        DiagnosticKind::StepAfterClosingStage {
                            step: steps[next as usize].name.clone(),
                            stage: stage.name.clone(),
                        },
                    );
                }
            }
        }
        stages
    }

    pub(super) fn never_matches(&mut self, file: usize, decls: &[&ast::StepDecl], steps: &[ir::Step]) {
        for (i, step) in steps.iter().enumerate() {
            let span = decls[i].predicate.as_ref().map_or(decls[i].span, |p| p.span);
            let mut parts = Vec::new();
            for e in [&step.relevance, &step.guard].into_iter().flatten() {
                conjuncts(e.clone(), &mut parts);
            }
            if parts.iter().any(|p| const_bool(p) == Some(false)) {
                self.report(
                    file,
                    span,
                    DiagnosticKind::NeverMatches { step: step.name.clone(), reason: NeverMatch::AlwaysFalse },
                );
                continue;
            }
            let mut equalities: HashMap<u32, &Value> = HashMap::new();
            for part in &parts {
                if let ir::Expr::Binary { op: ir::BinaryOp::Eq, lhs, rhs } = part {
                    let pair = match (&**lhs, &**rhs) {
                        (ir::Expr::Field(slot), ir::Expr::Const(v)) | (ir::Expr::Const(v), ir::Expr::Field(slot)) => {
                            Some((*slot, v))
                        }
                        _ => None,
                    };
                    if let Some((slot, value)) = pair {
                        if equalities.get(&slot).is_some_and(|prev| *prev != value) {
                            let field = self
                                .events
                                .get(step.event as usize)
                                .and_then(|e| e.fields.get(slot as usize))
                                .map_or(String::new(), |f| f.name.clone());
                            self.report(
                                file,
                                span,
                                DiagnosticKind::NeverMatches {
                                    step: step.name.clone(),
                                    reason: NeverMatch::ConflictingEquality { field },
                                },
                            );
                            break;
                        }
                        equalities.insert(slot, value);
                    }
                }
            }
        }
        // An alternative is shadowed when an earlier step from the same
        // stage takes the same events with the same (or no) condition.
        for (j, later) in steps.iter().enumerate() {
            for earlier in &steps[..j] {
                let same_place =
                    earlier.sources == later.sources || (earlier.sources.is_empty() && later.sources.is_empty());
                let overlaps = !later.sources.is_empty() && later.sources.iter().all(|s| earlier.sources.contains(s));
                if earlier.event == later.event
                    && (same_place || overlaps)
                    && earlier.event != u32::MAX
                    && ((earlier.relevance.is_none() && earlier.guard.is_none())
                        || (earlier.relevance == later.relevance && earlier.guard == later.guard))
                {
                    self.report(
                        file,
                        decls[j].step_name().span,
                        DiagnosticKind::NeverMatches {
                            step: later.name.clone(),
                            reason: NeverMatch::Shadowed { by: earlier.name.clone() },
                        },
                    );
                    break;
                }
            }
        }
    }

    pub(super) fn unreachable(
        &mut self,
        file: usize,
        decls: &[&ast::StepDecl],
        steps: &[ir::Step],
        stages: &[ir::Stage],
    ) {
        let mut reached = vec![false; steps.len()];
        let mut queue: Vec<usize> = steps.iter().filter(|s| s.sources.is_empty()).map(|s| s.id as usize).collect();
        while let Some(i) = queue.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            if stages[i].closes.is_some() && steps[i].outcome.is_some() {
                continue;
            }
            queue.extend(stages[i].outgoing.iter().map(|&n| n as usize));
        }
        for (i, step) in steps.iter().enumerate() {
            // A step after a closing stage already has E410; one whose
            // sources are unknown already has E203.
            let explained = step.sources.iter().any(|&s| steps[s as usize].outcome.is_some())
                || (step.sources.is_empty() && !is_start(decls[i]));
            if !reached[i] && !explained {
                self.report(
                    file,
                    decls[i].step_name().span,
                    DiagnosticKind::UnreachableStage { stage: step.name.clone() },
                );
            }
        }
    }
}

/// For each step, the steps that can come before it (transitively).
pub(super) fn ancestors(sources: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    (0..sources.len())
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<usize> = sources[i].clone();
            while let Some(j) = stack.pop() {
                if seen.insert(j) {
                    stack.extend(sources[j].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// The value of a condition made only of constants, if it is one.
pub(super) fn const_bool(expr: &ir::Expr) -> Option<bool> {
    match expr {
        ir::Expr::Const(Value::Bool(b)) => Some(*b),
        ir::Expr::Unary { op: ir::UnaryOp::Not, operand } => const_bool(operand).map(|b| !b),
        ir::Expr::Binary { op, lhs, rhs } => {
            if let (ir::Expr::Const(a), ir::Expr::Const(b)) = (&**lhs, &**rhs) {
                let ordering = match (a, b) {
                    (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
                    (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
                    (Value::String(x), Value::String(y)) => x.partial_cmp(y),
                    (Value::Bool(x), Value::Bool(y)) => x.partial_cmp(y),
                    _ => None,
                }?;
                use std::cmp::Ordering::*;
                return Some(match op {
                    ir::BinaryOp::Eq => ordering == Equal,
                    ir::BinaryOp::Ne => ordering != Equal,
                    ir::BinaryOp::Lt => ordering == Less,
                    ir::BinaryOp::Le => ordering != Greater,
                    ir::BinaryOp::Gt => ordering == Greater,
                    ir::BinaryOp::Ge => ordering != Less,
                    _ => return None,
                });
            }
            match op {
                ir::BinaryOp::And => match (const_bool(lhs), const_bool(rhs)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                ir::BinaryOp::Or => match (const_bool(lhs), const_bool(rhs)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}
