//! The one memory layout native code reads: an [`Operand`] per value an
//! expression reads, made from an `ir::Value` just before the call.
//!
//! `ir::Value` is a Rust enum whose layout the compiler may change at any
//! time, so native code never reads it. Instead the caller lays out the
//! few values a guard reads as `#[repr(C)]` operands (tag, 64-bit payload,
//! length), and the generated code loads from fixed offsets. This module
//! must stay free of `unsafe`: building an operand is plain Rust, and the
//! lifetime parameter makes the borrow checker keep a string operand's
//! bytes alive for as long as the operand exists.

use std::marker::PhantomData;

use mon_compiler::ir::{FieldType, Value};

/// What kind of value an operand (or a compiled subexpression) holds. The
/// discriminants are the tags native code compares against.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null = 0,
    Bool = 1,
    Int = 2,
    Float = 3,
    String = 4,
    Date = 5,
    Timestamp = 6,
    Duration = 7,
    TimeOfDay = 8,
    Enum = 9,
}

impl Kind {
    /// The kind of the values a field of this declared type holds (or
    /// `Null`, for an absent optional).
    pub fn of_field(ty: &FieldType) -> Kind {
        match ty {
            FieldType::String => Kind::String,
            FieldType::Int => Kind::Int,
            FieldType::Float => Kind::Float,
            FieldType::Bool => Kind::Bool,
            FieldType::Date => Kind::Date,
            FieldType::Timestamp => Kind::Timestamp,
            FieldType::Duration => Kind::Duration,
            FieldType::Enum(_) => Kind::Enum,
        }
    }

    /// Kinds whose payload is a signed 64-bit integer and whose order is
    /// the integers' order (dates, instants, enum variants included).
    pub(crate) fn is_integral(self) -> bool {
        matches!(self, Kind::Int | Kind::Date | Kind::Timestamp | Kind::Duration | Kind::TimeOfDay | Kind::Enum)
    }
}

/// One value as native code reads it: `tag` at offset 0, `bits` at 8,
/// `len` at 16 (see the `OFFSET_*` constants).
///
/// Invariant (relied on by the string helper in `native`): when `len` is
/// not zero, `bits` is the address of `len` bytes of UTF-8 that outlive
/// the operand. Only [`Operand::of`] builds operands, and it sets `len`
/// only for strings, from the string it borrows for `'a`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    tag: u32,
    bits: u64,
    len: u64,
    borrowed: PhantomData<&'a str>,
}

pub(crate) const OFFSET_TAG: i32 = 0;
pub(crate) const OFFSET_BITS: i32 = 8;
pub(crate) const OFFSET_LEN: i32 = 16;
pub(crate) const SIZE: i32 = 24;

const _: () = assert!(std::mem::size_of::<Operand<'static>>() == SIZE as usize);

impl<'a> Operand<'a> {
    pub const NULL: Operand<'static> = Operand { tag: Kind::Null as u32, bits: 0, len: 0, borrowed: PhantomData };

    /// The operand for a value, or for a missing one (`None` reads as
    /// `Null`, as the interpreter reads a slot that is not there).
    pub fn of(value: Option<&'a Value>) -> Operand<'a> {
        let (kind, bits, len) = match value {
            None | Some(Value::Null) => (Kind::Null, 0, 0),
            Some(Value::Bool(b)) => (Kind::Bool, u64::from(*b), 0),
            Some(Value::Int(i)) => (Kind::Int, *i as u64, 0),
            Some(Value::Float(f)) => (Kind::Float, f.to_bits(), 0),
            Some(Value::String(s)) => (Kind::String, s.as_ptr() as u64, s.len() as u64),
            Some(Value::Date(d)) => (Kind::Date, i64::from(*d) as u64, 0),
            Some(Value::Timestamp(t)) => (Kind::Timestamp, *t as u64, 0),
            Some(Value::Duration(d)) => (Kind::Duration, *d as u64, 0),
            Some(Value::TimeOfDay(s)) => (Kind::TimeOfDay, u64::from(*s), 0),
            Some(Value::Enum(i)) => (Kind::Enum, u64::from(*i), 0),
        };
        Operand { tag: kind as u32, bits, len, borrowed: PhantomData }
    }
}
