//! Each step's relevance predicate and guard as the engine checks them:
//! native code from `mon-jit` where it was compiled, the reference
//! interpreter (`eval`) everywhere else (issue 13, "Cranelift, where it
//! pays").
//!
//! The answer never depends on which of the two ran: the native code is
//! held to the interpreter's results by `tests/jit_differential.rs`, and
//! when a call meets an operand that is not of its slot's declared kind it
//! says so and the interpreter answers instead. Which conditions are
//! compiled is decided by [`worth_compiling`], from what the guard
//! benchmark (`benches/guard.rs`) measured; `MON_JIT=off` (read by the CLI,
//! which calls [`set_default`]) or [`Engine::set_jit`](super::Engine::set_jit)
//! turns it off.

use std::sync::atomic::{AtomicBool, Ordering};

use mon_compiler::ir::{self, BinaryOp, Expr, Program};
use mon_jit::{Guards, Input, Kind, Verdict};

use crate::eval::{holds, Env};

/// What kind of value an input of a compiled condition holds.
type KindOf<'p> = Box<dyn Fn(Input) -> Option<Kind> + 'p>;

/// Whether engines made from now on compile their conditions.
static DEFAULT_ON: AtomicBool = AtomicBool::new(true);

/// Turns native conditions on or off for engines created afterwards (the
/// CLI does this once, from `MON_JIT`). Records are the same either way.
pub fn set_default(on: bool) {
    DEFAULT_ON.store(on, Ordering::Relaxed);
}

pub fn default_on() -> bool {
    DEFAULT_ON.load(Ordering::Relaxed)
}

/// Which of a step's two conditions.
#[derive(Clone, Copy)]
pub(super) enum Which {
    Relevance = 0,
    Guard = 1,
}

/// Marks a condition left to the interpreter.
const INTERPRETED: u32 = u32::MAX;

#[derive(Default)]
pub(super) struct Conditions {
    guards: Option<Guards>,
    /// Per workflow, the position of its first step in `compiled`.
    first_step: Vec<u32>,
    /// Per step of every workflow: where its relevance and guard are in
    /// `guards`, or `INTERPRETED`.
    compiled: Vec<[u32; 2]>,
}

impl Conditions {
    /// Every condition interpreted.
    pub(super) fn interpreted() -> Self {
        Conditions::default()
    }

    /// Compiles the conditions of every step that [`worth_compiling`]
    /// picks. If the CPU has no native backend, all stay interpreted.
    pub(super) fn compile(program: &Program) -> Self {
        let mut first_step = Vec::with_capacity(program.workflows.len());
        let mut compiled = Vec::new();
        let mut picked: Vec<(&Expr, KindOf<'_>)> = Vec::new();
        for workflow in &program.workflows {
            first_step.push(compiled.len() as u32);
            for step in &workflow.steps {
                let mut at = [INTERPRETED; 2];
                for (which, condition) in [(Which::Relevance, &step.relevance), (Which::Guard, &step.guard)] {
                    if let Some(expr) = condition.as_ref().filter(|e| worth_compiling(e)) {
                        at[which as usize] = picked.len() as u32;
                        picked.push((expr, Box::new(move |input| kind_of(program, workflow, step, input))));
                    }
                }
                compiled.push(at);
            }
        }
        if picked.is_empty() {
            return Conditions::default();
        }
        let guards = Guards::compile(picked.iter().map(|(e, k)| (*e, k.as_ref() as &dyn Fn(Input) -> Option<Kind>)));
        match guards {
            Ok(guards) => Conditions { guards: Some(guards), first_step, compiled },
            Err(_) => Conditions::default(),
        }
    }

    /// Whether the condition holds for this event (and kept fields).
    pub(super) fn holds(&self, workflow: u32, step: u32, which: Which, expr: &Expr, env: &Env) -> bool {
        let native = self.guards.as_ref().and_then(|guards| {
            let first = *self.first_step.get(workflow as usize)?;
            let at = self.compiled.get((first + step) as usize)?[which as usize];
            guards.get(at as usize)
        });
        if let Some(guard) = native {
            match guard.run(env.fields, env.kept) {
                Verdict::True => return true,
                Verdict::False | Verdict::Null => return false,
                Verdict::Unknown => {}
            }
        }
        holds(expr, env)
    }

    /// How many conditions run as native code.
    pub(super) fn native_count(&self) -> usize {
        self.guards.as_ref().map_or(0, Guards::compiled)
    }
}

/// The declared kind of what a step's condition reads: a field of its own
/// event, or one kept from an earlier step's event.
fn kind_of(program: &Program, workflow: &ir::Workflow, step: &ir::Step, input: Input) -> Option<Kind> {
    let (event, slot) = match input {
        Input::Field(slot) => (step.event, slot),
        Input::Kept { step, slot } => (workflow.steps.get(step as usize)?.event, slot),
    };
    let field = program.events.get(event as usize)?.fields.get(slot as usize)?;
    Some(Kind::of_field(&field.ty))
}

/// Whether native code pays for this condition, per the guard benchmark
/// (docs/notes/performance.md, "Cranelift"): a lone comparison of a field
/// with a constant is about as fast interpreted, since the call's fixed
/// cost (laying out the operands) matches the interpreter's single match;
/// anything with a second comparison or arithmetic is faster native.
pub(super) fn worth_compiling(expr: &Expr) -> bool {
    comparisons(expr) >= 2
}

/// The comparisons, arithmetic and membership tests in an expression.
fn comparisons(expr: &Expr) -> usize {
    match expr {
        Expr::Binary { op: BinaryOp::And | BinaryOp::Or, lhs, rhs } => comparisons(lhs) + comparisons(rhs),
        Expr::Binary { lhs, rhs, .. } => 1 + comparisons(lhs) + comparisons(rhs),
        Expr::Unary { operand, .. } => comparisons(operand),
        _ => 0,
    }
}
