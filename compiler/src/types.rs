//! The static types of mon expressions.

use std::fmt;

use crate::ir::FieldType;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Duration,
    TimeOfDay,
    /// The variants of one enum declaration, in order.
    Enum(Vec<String>),
    List(Box<Type>),
    Optional(Box<Type>),
    /// An expression that already failed to check: compatible with
    /// everything, so one mistake gives one error.
    Error,
}

impl Type {
    pub fn from_field(ty: &FieldType, optional: bool) -> Type {
        let base = match ty {
            FieldType::String => Type::String,
            FieldType::Int => Type::Int,
            FieldType::Float => Type::Float,
            FieldType::Bool => Type::Bool,
            FieldType::Date => Type::Date,
            FieldType::Timestamp => Type::Timestamp,
            FieldType::Duration => Type::Duration,
            FieldType::Enum(variants) => Type::Enum(variants.clone()),
        };
        if optional {
            Type::Optional(Box::new(base))
        } else {
            base
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Error)
    }

    /// The type without `?`.
    pub fn non_optional(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Type::Error)
    }

    /// Whether values of the two types can be compared with `==`.
    pub fn comparable_with(&self, other: &Type) -> bool {
        let (a, b) = (self.non_optional(), other.non_optional());
        a.is_error() || b.is_error() || a == b || (a.is_numeric() && b.is_numeric())
    }

    /// Whether the type has an order (`<`, `>=`...).
    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            Type::Int
                | Type::Float
                | Type::String
                | Type::Date
                | Type::Timestamp
                | Type::Duration
                | Type::TimeOfDay
                | Type::Error
        )
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::String => f.write_str("string"),
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::Bool => f.write_str("bool"),
            Type::Date => f.write_str("date"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::TimeOfDay => f.write_str("time of day"),
            Type::Enum(variants) => write!(f, "enum {{ {} }}", variants.join(", ")),
            Type::List(inner) => write!(f, "list of {inner}"),
            Type::Optional(inner) => write!(f, "{inner}?"),
            Type::Error => f.write_str("(error)"),
        }
    }
}
