//! Lowering of one `ir::Expr` to cranelift IR, with the interpreter's
//! semantics (`runtime/src/eval.rs`) written out case by case.
//!
//! Every subexpression lowers to a [`Lowered`]: a kind known at compile
//! time (from the slot's declared type or the constant), a dynamic null
//! flag (absent when it can never be null), and the payload. The code is
//! straight-line: no branches, both sides of `and`/`or` are computed (they
//! have no side effects, calls are not compiled) and masks combine them.
//! Whatever the kinds cannot decide at compile time, the generated code
//! decides safely: a slot whose value is neither null nor its declared
//! kind sets the `bail` flag, and the caller then asks the interpreter.
//! An expression with a construct not handled here (a function call, a
//! status metric, string concatenation, ...) is not compiled at all
//! ([`Unsupported`]) and stays with the interpreter.
//!
//! The generated function reads `operands[i]` only for the inputs this
//! module registered, which is what makes the caller's buffer large enough.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, MemFlagsData, Type, Value as Ir};
use cranelift_frontend::FunctionBuilder;
use mon_compiler::ir::{BinaryOp, Expr, UnaryOp, Value};

use crate::operand::{Kind, OFFSET_BITS, OFFSET_LEN, OFFSET_TAG, SIZE};
use crate::Input;

/// The generated function's answer, as the byte it returns.
pub(crate) const FALSE: i64 = 0;
pub(crate) const TRUE: i64 = 1;
pub(crate) const NULL: i64 = 2;
pub(crate) const BAIL: i64 = 3;

/// Why an expression stays with the interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

/// A lowered subexpression. `a` is the payload (i8 for booleans, i64 for
/// integral kinds, f64 for floats, the address for strings), `len` the
/// length of a string, `null` a 0/1 flag when the value can be null.
#[derive(Clone, Copy)]
struct Lowered {
    kind: Kind,
    null: Option<Ir>,
    a: Option<Ir>,
    len: Option<Ir>,
}

impl Lowered {
    const NULL: Lowered = Lowered { kind: Kind::Null, null: None, a: None, len: None };
}

pub(crate) struct Lower<'b, 'f> {
    pub builder: &'b mut FunctionBuilder<'f>,
    pub operands: Ir,
    pub pointer: Type,
    pub str_cmp: FuncRef,
    /// The kind a field or kept field is declared with; `None` for a slot
    /// that does not exist (it always reads as null).
    pub kind_of: &'b dyn Fn(Input) -> Option<Kind>,
    /// The values the function reads, in operand order.
    pub inputs: Vec<Input>,
    /// Strings the code points at; owned by the compiled guard so they
    /// live exactly as long as the code.
    pub strings: Vec<Box<str>>,
    bail: Option<Ir>,
}

impl<'b, 'f> Lower<'b, 'f> {
    pub fn new(
        builder: &'b mut FunctionBuilder<'f>,
        operands: Ir,
        pointer: Type,
        str_cmp: FuncRef,
        kind_of: &'b dyn Fn(Input) -> Option<Kind>,
    ) -> Self {
        Lower { builder, operands, pointer, str_cmp, kind_of, inputs: Vec::new(), strings: Vec::new(), bail: None }
    }

    /// Lowers a condition and returns the byte to return: `FALSE`, `TRUE`,
    /// `NULL`, or `BAIL` when an operand was not of its declared kind.
    pub fn condition(&mut self, expr: &Expr) -> Result<Ir, Unsupported> {
        let value = self.expr(expr)?;
        let answer = match (value.kind, value.a) {
            (Kind::Bool, Some(a)) => match value.null {
                Some(null) => {
                    let null_answer = self.builder.ins().iconst(types::I8, NULL);
                    self.builder.ins().select(null, null_answer, a)
                }
                None => a,
            },
            (Kind::Null, _) => self.builder.ins().iconst(types::I8, NULL),
            _ => return Err(Unsupported("a condition that is not a boolean")),
        };
        Ok(match self.bail {
            Some(bail) => {
                let bail_answer = self.builder.ins().iconst(types::I8, BAIL);
                self.builder.ins().select(bail, bail_answer, answer)
            }
            None => answer,
        })
    }

    fn expr(&mut self, expr: &Expr) -> Result<Lowered, Unsupported> {
        match expr {
            Expr::Const(value) => Ok(self.constant(value)),
            Expr::Field(slot) => Ok(self.input(Input::Field(*slot))),
            Expr::Kept { step, slot } => Ok(self.input(Input::Kept { step: *step, slot: *slot })),
            Expr::Metric(_) => Err(Unsupported("status metrics")),
            Expr::Call { .. } => Err(Unsupported("function calls")),
            Expr::List(_) => Err(Unsupported("a list outside `in`")),
            Expr::Unary { op, operand } => {
                let operand = self.expr(operand)?;
                self.unary(*op, operand)
            }
            Expr::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs),
        }
    }

    fn constant(&mut self, value: &Value) -> Lowered {
        let ins = self.builder.ins();
        let (kind, a, len) = match value {
            Value::Null => return Lowered::NULL,
            Value::Bool(b) => (Kind::Bool, ins.iconst(types::I8, i64::from(*b)), None),
            Value::Int(i) => (Kind::Int, ins.iconst(types::I64, *i), None),
            Value::Float(f) => (Kind::Float, ins.f64const(*f), None),
            Value::Date(d) => (Kind::Date, ins.iconst(types::I64, i64::from(*d)), None),
            Value::Timestamp(t) => (Kind::Timestamp, ins.iconst(types::I64, *t), None),
            Value::Duration(d) => (Kind::Duration, ins.iconst(types::I64, *d), None),
            Value::TimeOfDay(s) => (Kind::TimeOfDay, ins.iconst(types::I64, i64::from(*s)), None),
            Value::Enum(i) => (Kind::Enum, ins.iconst(types::I64, i64::from(*i)), None),
            Value::String(s) => {
                // Why a boxed copy: its heap bytes never move, so the
                // address baked into the code stays valid while the
                // compiled guard (which owns the box) exists.
                let owned: Box<str> = s.as_str().into();
                let address = ins.iconst(self.pointer, owned.as_ptr() as i64);
                let len = self.builder.ins().iconst(types::I64, owned.len() as i64);
                self.strings.push(owned);
                (Kind::String, address, Some(len))
            }
        };
        Lowered { kind, null: None, a: Some(a), len }
    }

    /// Reads a field: the operand's tag says null, its declared kind, or
    /// something else (then the call bails out to the interpreter).
    fn input(&mut self, input: Input) -> Lowered {
        let Some(kind) = (self.kind_of)(input) else { return Lowered::NULL };
        if kind == Kind::Null {
            return Lowered::NULL;
        }
        let index = match self.inputs.iter().position(|i| *i == input) {
            Some(index) => index,
            None => {
                self.inputs.push(input);
                self.inputs.len() - 1
            }
        };
        let base = index as i32 * SIZE;
        let flags = MemFlagsData::trusted().with_readonly();
        let ins = self.builder.ins();
        let tag = ins.load(types::I32, flags, self.operands, base + OFFSET_TAG);
        let null = self.builder.ins().icmp_imm_s(IntCC::Equal, tag, Kind::Null as i64);
        let expected = self.builder.ins().icmp_imm_s(IntCC::Equal, tag, kind as i64);
        let fits = self.builder.ins().bor(null, expected);
        let misfit = self.builder.ins().bxor_imm_s(fits, 1);
        self.add_bail(misfit);
        let (a, len) = match kind {
            Kind::Float => (self.builder.ins().load(types::F64, flags, self.operands, base + OFFSET_BITS), None),
            Kind::Bool => {
                let bits = self.builder.ins().load(types::I64, flags, self.operands, base + OFFSET_BITS);
                (self.builder.ins().ireduce(types::I8, bits), None)
            }
            Kind::String => {
                let address = self.builder.ins().load(self.pointer, flags, self.operands, base + OFFSET_BITS);
                let len = self.builder.ins().load(types::I64, flags, self.operands, base + OFFSET_LEN);
                (address, Some(len))
            }
            _ => (self.builder.ins().load(types::I64, flags, self.operands, base + OFFSET_BITS), None),
        };
        Lowered { kind, null: Some(null), a: Some(a), len }
    }

    fn add_bail(&mut self, flag: Ir) {
        self.bail = Some(match self.bail {
            Some(bail) => self.builder.ins().bor(bail, flag),
            None => flag,
        });
    }

    fn either_null(&mut self, x: Option<Ir>, y: Option<Ir>) -> Option<Ir> {
        match (x, y) {
            (Some(x), Some(y)) => Some(self.builder.ins().bor(x, y)),
            (x, None) => x,
            (None, y) => y,
        }
    }

    /// `holds`: a boolean that is true and not null.
    fn holds(&mut self, value: Lowered) -> Ir {
        match (value.kind, value.a) {
            (Kind::Bool, Some(a)) => match value.null {
                Some(null) => {
                    let present = self.builder.ins().bxor_imm_s(null, 1);
                    self.builder.ins().band(a, present)
                }
                None => a,
            },
            _ => self.builder.ins().iconst(types::I8, 0),
        }
    }

    fn boolean(&self, flag: Ir, null: Option<Ir>) -> Lowered {
        Lowered { kind: Kind::Bool, null, a: Some(flag), len: None }
    }

    fn unary(&mut self, op: UnaryOp, operand: Lowered) -> Result<Lowered, Unsupported> {
        let Some(a) = operand.a else { return Ok(Lowered::NULL) };
        Ok(match (op, operand.kind) {
            (UnaryOp::Not, Kind::Bool) => {
                let flipped = self.builder.ins().bxor_imm_s(a, 1);
                self.boolean(flipped, operand.null)
            }
            // `checked_neg`: negating i64::MIN is null.
            (UnaryOp::Neg, Kind::Int | Kind::Duration) => {
                let overflow = self.builder.ins().icmp_imm_s(IntCC::Equal, a, i64::MIN);
                let negated = self.builder.ins().ineg(a);
                let null = self.either_null(operand.null, Some(overflow));
                Lowered { kind: operand.kind, null, a: Some(negated), len: None }
            }
            (UnaryOp::Neg, Kind::Float) => {
                let negated = self.builder.ins().fneg(a);
                Lowered { kind: Kind::Float, null: operand.null, a: Some(negated), len: None }
            }
            _ => Lowered::NULL,
        })
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> Result<Lowered, Unsupported> {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let (l, r) = (self.expr(lhs)?, self.expr(rhs)?);
                let (l, r) = (self.holds(l), self.holds(r));
                let both = match op {
                    BinaryOp::And => self.builder.ins().band(l, r),
                    _ => self.builder.ins().bor(l, r),
                };
                Ok(self.boolean(both, None))
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let needle = self.expr(lhs)?;
                let Expr::List(items) = rhs else { return Ok(Lowered::NULL) };
                let mut found = self.builder.ins().iconst(types::I8, 0);
                for item in items {
                    let item = self.expr(item)?;
                    let equal = self.equal(needle, item);
                    let hit = self.holds(equal);
                    found = self.builder.ins().bor(found, hit);
                }
                if needle.kind == Kind::Null {
                    return Ok(Lowered::NULL);
                }
                if op == BinaryOp::NotIn {
                    found = self.builder.ins().bxor_imm_s(found, 1);
                }
                Ok(self.boolean(found, needle.null))
            }
            BinaryOp::Coalesce => {
                let (l, r) = (self.expr(lhs)?, self.expr(rhs)?);
                self.coalesce(l, r)
            }
            _ => {
                let (l, r) = (self.expr(lhs)?, self.expr(rhs)?);
                match op {
                    BinaryOp::Eq | BinaryOp::Ne => {
                        let equal = self.equal(l, r);
                        match (op, equal.a) {
                            (BinaryOp::Ne, Some(a)) => {
                                let flipped = self.builder.ins().bxor_imm_s(a, 1);
                                Ok(self.boolean(flipped, equal.null))
                            }
                            _ => Ok(equal),
                        }
                    }
                    BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => Ok(self.order(op, l, r)),
                    _ => self.arithmetic(op, l, r),
                }
            }
        }
    }

    fn coalesce(&mut self, l: Lowered, r: Lowered) -> Result<Lowered, Unsupported> {
        let (Some(la), Some(ra), Some(lnull)) = (l.a, r.a, l.null) else {
            // A left side that is always null gives the right; one that is
            // never null gives itself; a null right leaves the left as is.
            return Ok(match (l.kind, l.null, r.kind) {
                (Kind::Null, _, _) => r,
                (_, None, _) | (_, _, Kind::Null) => l,
                _ => return Err(Unsupported("coalesce")),
            });
        };
        if l.kind != r.kind {
            return Err(Unsupported("coalesce of two kinds"));
        }
        let a = self.builder.ins().select(lnull, ra, la);
        let len = match (l.len, r.len) {
            (Some(ll), Some(rl)) => Some(self.builder.ins().select(lnull, rl, ll)),
            _ => None,
        };
        let null = match r.null {
            Some(rnull) => Some(self.builder.ins().band(lnull, rnull)),
            None => None,
        };
        Ok(Lowered { kind: l.kind, null, a: Some(a), len })
    }

    /// Both sides as floats when either is a float and the other a float
    /// or an int, as the interpreter promotes them; `None` otherwise.
    fn as_floats(&mut self, l: &Lowered, la: Ir, r: &Lowered, ra: Ir) -> Option<(Ir, Ir)> {
        match (l.kind, r.kind) {
            (Kind::Float, Kind::Float) => Some((la, ra)),
            (Kind::Int, Kind::Float) => Some((self.builder.ins().fcvt_from_sint(types::F64, la), ra)),
            (Kind::Float, Kind::Int) => Some((la, self.builder.ins().fcvt_from_sint(types::F64, ra))),
            _ => None,
        }
    }

    /// The interpreter's `equal`: null if either side is, ints and floats
    /// compared as floats, other kinds only equal to their own kind.
    fn equal(&mut self, l: Lowered, r: Lowered) -> Lowered {
        let (Some(la), Some(ra)) = (l.a, r.a) else { return Lowered::NULL };
        let null = self.either_null(l.null, r.null);
        if let Some((x, y)) = self.as_floats(&l, la, &r, ra) {
            let flag = self.builder.ins().fcmp(FloatCC::Equal, x, y);
            return self.boolean(flag, null);
        }
        let flag = match (l.kind, r.kind) {
            (Kind::String, Kind::String) => {
                let order = self.compare_strings(l, r);
                self.builder.ins().icmp_imm_s(IntCC::Equal, order, 0)
            }
            (x, y) if x == y => self.builder.ins().icmp(IntCC::Equal, la, ra),
            _ => self.builder.ins().iconst(types::I8, 0),
        };
        self.boolean(flag, null)
    }

    /// The interpreter's `order`: null for kinds that do not compare and
    /// for NaN.
    fn order(&mut self, op: BinaryOp, l: Lowered, r: Lowered) -> Lowered {
        let (Some(la), Some(ra)) = (l.a, r.a) else { return Lowered::NULL };
        let null = self.either_null(l.null, r.null);
        let floats = self.as_floats(&l, la, &r, ra);
        if let Some((x, y)) = floats {
            let cc = match op {
                BinaryOp::Lt => FloatCC::LessThan,
                BinaryOp::Le => FloatCC::LessThanOrEqual,
                BinaryOp::Gt => FloatCC::GreaterThan,
                _ => FloatCC::GreaterThanOrEqual,
            };
            let flag = self.builder.ins().fcmp(cc, x, y);
            // `partial_cmp` of NaN is `None`: the comparison is null.
            let unordered = self.builder.ins().fcmp(FloatCC::Unordered, x, y);
            let null = self.either_null(null, Some(unordered));
            return self.boolean(flag, null);
        }
        let signed = |op| match op {
            BinaryOp::Lt => IntCC::SignedLessThan,
            BinaryOp::Le => IntCC::SignedLessThanOrEqual,
            BinaryOp::Gt => IntCC::SignedGreaterThan,
            _ => IntCC::SignedGreaterThanOrEqual,
        };
        let flag = match (l.kind, r.kind) {
            (Kind::String, Kind::String) => {
                let order = self.compare_strings(l, r);
                self.builder.ins().icmp_imm_s(signed(op), order, 0)
            }
            // Booleans are 0 and 1: false < true, as `bool::cmp`.
            (x, y) if x == y && (x.is_integral() || x == Kind::Bool) => self.builder.ins().icmp(signed(op), la, ra),
            _ => return Lowered::NULL,
        };
        self.boolean(flag, null)
    }

    /// -1, 0 or 1 as `str::cmp` orders the two strings (by bytes).
    fn compare_strings(&mut self, l: Lowered, r: Lowered) -> Ir {
        let zero = self.builder.ins().iconst(types::I64, 0);
        let args = [l.a.unwrap_or(zero), l.len.unwrap_or(zero), r.a.unwrap_or(zero), r.len.unwrap_or(zero)];
        let call = self.builder.ins().call(self.str_cmp, &args);
        self.builder.inst_results(call)[0]
    }

    /// The interpreter's `arithmetic`: checked integer and instant
    /// arithmetic (overflow and division by zero are null), IEEE floats
    /// (division by zero is null).
    fn arithmetic(&mut self, op: BinaryOp, l: Lowered, r: Lowered) -> Result<Lowered, Unsupported> {
        let (Some(la), Some(ra)) = (l.a, r.a) else { return Ok(Lowered::NULL) };
        let null = self.either_null(l.null, r.null);
        let floats = self.as_floats(&l, la, &r, ra);
        if let Some((x, y)) = floats {
            let ins = self.builder.ins();
            let (value, zero_divisor) = match op {
                BinaryOp::Add => (ins.fadd(x, y), None),
                BinaryOp::Sub => (ins.fsub(x, y), None),
                BinaryOp::Mul => (ins.fmul(x, y), None),
                _ => {
                    let zero = ins.f64const(0.0);
                    let is_zero = self.builder.ins().fcmp(FloatCC::Equal, y, zero);
                    (self.builder.ins().fdiv(x, y), Some(is_zero))
                }
            };
            let null = self.either_null(null, zero_divisor);
            return Ok(Lowered { kind: Kind::Float, null, a: Some(value), len: None });
        }
        use Kind::{Duration, Int, Timestamp};
        let kind = match (l.kind, r.kind, op) {
            (Int, Int, _) => Int,
            (Duration, Duration, BinaryOp::Add | BinaryOp::Sub) => Duration,
            (Timestamp, Duration, BinaryOp::Add | BinaryOp::Sub)
            | (Duration, Timestamp, BinaryOp::Add | BinaryOp::Sub) => Timestamp,
            (Timestamp, Timestamp, BinaryOp::Sub) => Duration,
            (Duration, Int, BinaryOp::Mul | BinaryOp::Div) | (Int, Duration, BinaryOp::Mul) => Duration,
            (Duration, Kind::Float, _) | (Kind::Float, Duration, _) => {
                return Err(Unsupported("durations scaled by floats"))
            }
            (Kind::String, Kind::String, BinaryOp::Add) => return Err(Unsupported("string concatenation")),
            _ => return Ok(Lowered::NULL),
        };
        let (value, overflow) = match op {
            BinaryOp::Add => self.builder.ins().sadd_overflow(la, ra),
            BinaryOp::Sub => self.builder.ins().ssub_overflow(la, ra),
            BinaryOp::Mul => self.builder.ins().smul_overflow(la, ra),
            _ => {
                // `checked_div`: by zero, or i64::MIN by -1, is null; the
                // divisor is replaced so the instruction cannot trap.
                let ins = self.builder.ins();
                let by_zero = ins.icmp_imm_s(IntCC::Equal, ra, 0);
                let min = self.builder.ins().icmp_imm_s(IntCC::Equal, la, i64::MIN);
                let minus_one = self.builder.ins().icmp_imm_s(IntCC::Equal, ra, -1);
                let wraps = self.builder.ins().band(min, minus_one);
                let invalid = self.builder.ins().bor(by_zero, wraps);
                let one = self.builder.ins().iconst(types::I64, 1);
                let divisor = self.builder.ins().select(invalid, one, ra);
                (self.builder.ins().sdiv(la, divisor), invalid)
            }
        };
        let null = self.either_null(null, Some(overflow));
        Ok(Lowered { kind, null, a: Some(value), len: None })
    }
}
