//! Native code for the conditions the engine checks per event: each
//! step's relevance predicate and guard, compiled with cranelift-jit over
//! the event's slot layout (issue 13, "Cranelift, where it pays").
//!
//! The interpreter in `mon-runtime` (`eval.rs`) is the reference: this
//! crate must give exactly its answers, and says so by a differential
//! property test (`tests/differential.rs`). It compiles comparisons,
//! `and`/`or`/`not`, `in` lists, `??`, negation and checked arithmetic over
//! ints, floats, booleans, strings, dates, instants, durations and enums.
//! Anything else (function calls, status metrics, string concatenation,
//! durations scaled by floats) is not compiled, and the caller keeps the
//! interpreter for that expression. A call whose operand is not of the
//! slot's declared kind answers [`Verdict::Unknown`], and the caller asks
//! the interpreter for that event.
//!
//! Layering: this crate sits between `mon-compiler` (whose IR it reads)
//! and `mon-runtime` (which runs it). It is kept out of the compiler so
//! that the compiler, the LSP and the loader do not build cranelift, and so
//! that the crate's `unsafe` stays in one small module (`native`); the rest
//! of the crate denies it. It does no I/O and reads no clock.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod lower;
mod native;
mod operand;

use mon_compiler::ir::{Expr, Slot, StepId, Value};
use smallvec::SmallVec;

pub use lower::Unsupported;
pub use native::Unavailable;
pub use operand::{Kind, Operand};

/// A value a condition reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A slot of the event being matched.
    Field(Slot),
    /// A field kept from an earlier step of the instance.
    Kept { step: StepId, slot: Slot },
}

/// What a compiled condition says, in the interpreter's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    False,
    True,
    /// The condition evaluates to null (it does not hold).
    Null,
    /// An operand was neither null nor of its slot's declared kind: ask
    /// the interpreter.
    Unknown,
}

/// Native code for a list of conditions, compiled together.
pub struct Guards {
    code: native::Code,
}

impl Guards {
    /// Compiles each condition, given the declared kind of whatever it
    /// reads (`None` for a slot that does not exist). A condition that
    /// cannot be compiled gets no code: [`get`](Self::get) returns `None`.
    pub fn compile<'e>(
        conditions: impl IntoIterator<Item = (&'e Expr, &'e dyn Fn(Input) -> Option<Kind>)>,
    ) -> Result<Guards, Unavailable> {
        Ok(Guards { code: native::compile(conditions)? })
    }

    /// The native code for the `index`th condition, if it was compiled.
    pub fn get(&self, index: usize) -> Option<Guard<'_>> {
        self.code.functions.get(index).and_then(Option::as_ref).map(Guard)
    }

    /// How many of the conditions were compiled.
    pub fn compiled(&self) -> usize {
        self.code.functions.iter().filter(|f| f.is_some()).count()
    }
}

/// One compiled condition.
#[derive(Clone, Copy)]
pub struct Guard<'c>(&'c native::Function);

impl Guard<'_> {
    /// Evaluates the condition over an event's fields and the fields its
    /// instance kept, read exactly as the interpreter reads them.
    pub fn run(&self, fields: &[Value], kept: &[(u32, u32, Value)]) -> Verdict {
        let operands: SmallVec<[Operand<'_>; 8]> = self
            .0
            .inputs
            .iter()
            .map(|input| {
                Operand::of(match *input {
                    Input::Field(slot) => fields.get(slot as usize),
                    Input::Kept { step, slot } => {
                        kept.iter().find(|(s, k, _)| *s == step && *k == slot).map(|(_, _, v)| v)
                    }
                })
            })
            .collect();
        match i64::from(self.0.call(&operands)) {
            lower::FALSE => Verdict::False,
            lower::TRUE => Verdict::True,
            lower::NULL => Verdict::Null,
            _ => Verdict::Unknown,
        }
    }

    /// The values the condition reads, in operand order.
    pub fn inputs(&self) -> &[Input] {
        &self.0.inputs
    }
}

/// Whether lowering supports the expression (without compiling it).
pub fn supports(expr: &Expr, kind_of: &dyn Fn(Input) -> Option<Kind>) -> bool {
    Guards::compile([(expr, kind_of)]).is_ok_and(|g| g.compiled() == 1)
}
