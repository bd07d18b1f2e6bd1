//! The filter index: which of an event type's routes can an event be
//! relevant to, found by hash lookups instead of evaluating every route's
//! relevance predicate (issue 13, "many rules on one event type").
//!
//! Real deployments have hundreds of file SLAs that all listen to
//! `file_received where job_id == "..."`. Without the index each such event
//! evaluates every one of their predicates; with it, a step whose relevance
//! has a conjunct `field == "literal"` (or `field in [..]` of literals) is
//! filed under (slot, literal), and an event is checked only against the
//! routes filed under its own values, plus those with a step that has no
//! such conjunct (`always`).
//!
//! Why the records cannot change: the index only leaves out routes none of
//! whose steps can be relevant (a conjunct that does not hold makes the
//! `and` false), and a route with nothing relevant makes no record and
//! changes no state; it only writes a trace line for a traced key, so the
//! engine does not use the index while any key is traced. The routes kept
//! are visited in their original order, so records come out in the same
//! order too. Only literals that equal nothing but their own kind of value
//! are indexed (strings, enum variants, booleans, dates): `==` on numbers
//! compares an int with a float, which a hash lookup would not.

use std::collections::HashMap;

use mon_compiler::ir::{BinaryOp, Expr, Program, Value};

use super::routing::Routes;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Per event type: its routes (indices into `Routes[type]`) by the values
/// of indexed fields.
#[derive(Debug, Default)]
pub(super) struct Filter {
    types: Vec<TypeFilter>,
}

#[derive(Debug, Default)]
struct TypeFilter {
    /// Routes with a step that no indexed conjunct guards: always checked.
    always: Vec<u32>,
    /// Per indexed slot: routes by value.
    slots: Vec<(u32, Values)>,
}

#[derive(Debug, Default)]
struct Values {
    strings: FastMap<String, Vec<u32>>,
    /// Enum variants, booleans and dates, tagged by kind.
    scalars: FastMap<(u8, i64), Vec<u32>>,
}

impl Values {
    fn file(&mut self, value: &Value, route: u32) {
        let routes = match value {
            Value::String(s) => self.strings.entry(s.clone()).or_default(),
            other => match scalar(other) {
                Some(key) => self.scalars.entry(key).or_default(),
                None => return,
            },
        };
        if routes.last() != Some(&route) {
            routes.push(route);
        }
    }

    fn get(&self, value: &Value) -> &[u32] {
        let routes = match value {
            Value::String(s) => self.strings.get(s.as_str()),
            other => scalar(other).and_then(|key| self.scalars.get(&key)),
        };
        routes.map_or(&[], Vec::as_slice)
    }
}

/// The hash key of a literal that equals only its own kind of value.
fn scalar(value: &Value) -> Option<(u8, i64)> {
    match value {
        Value::Enum(i) => Some((0, i64::from(*i))),
        Value::Bool(b) => Some((1, i64::from(*b))),
        Value::Date(d) => Some((2, i64::from(*d))),
        _ => None,
    }
}

fn indexable(value: &Value) -> bool {
    matches!(value, Value::String(_)) || scalar(value).is_some()
}

/// The first conjunct of `expr` that an event can only satisfy by having
/// one of a few literal values in one slot: (slot, values).
fn equality(expr: &Expr) -> Option<(u32, Vec<&Value>)> {
    let Expr::Binary { op, lhs, rhs } = expr else { return None };
    match (op, lhs.as_ref(), rhs.as_ref()) {
        (BinaryOp::And, l, r) => equality(l).or_else(|| equality(r)),
        (BinaryOp::Eq, Expr::Field(slot), Expr::Const(v)) | (BinaryOp::Eq, Expr::Const(v), Expr::Field(slot))
            if indexable(v) =>
        {
            Some((*slot, vec![v]))
        }
        (BinaryOp::In, Expr::Field(slot), Expr::List(items)) => {
            let values: Option<Vec<&Value>> = items
                .iter()
                .map(|item| match item {
                    Expr::Const(v) if indexable(v) => Some(v),
                    _ => None,
                })
                .collect();
            Some((*slot, values?))
        }
        _ => None,
    }
}

impl Filter {
    pub(super) fn new(program: &Program, routes: &Routes) -> Self {
        let types = routes
            .iter()
            .map(|type_routes| {
                let mut filter = TypeFilter::default();
                for (r, (workflow, steps)) in type_routes.iter().enumerate() {
                    let workflow = &program.workflows[*workflow as usize];
                    let mut always = false;
                    for &s in steps {
                        match workflow.steps[s as usize].relevance.as_ref().and_then(equality) {
                            Some((slot, values)) => {
                                let at = match filter.slots.iter().position(|(s, _)| *s == slot) {
                                    Some(at) => at,
                                    None => {
                                        filter.slots.push((slot, Values::default()));
                                        filter.slots.len() - 1
                                    }
                                };
                                for value in values {
                                    filter.slots[at].1.file(value, r as u32);
                                }
                            }
                            None => always = true,
                        }
                    }
                    if always {
                        filter.always.push(r as u32);
                    }
                }
                filter
            })
            .collect();
        Filter { types }
    }

    /// Whether events of this type gain from the index (some route is
    /// filed under a value).
    pub(super) fn indexes(&self, event_type: u32) -> bool {
        self.types.get(event_type as usize).is_some_and(|t| !t.slots.is_empty())
    }

    /// The routes an event with these fields may be relevant to, in their
    /// original order, into `out`.
    pub(super) fn candidates(&self, event_type: u32, fields: &[Value], out: &mut Vec<u32>) {
        out.clear();
        let Some(filter) = self.types.get(event_type as usize) else { return };
        out.extend_from_slice(&filter.always);
        for (slot, values) in &filter.slots {
            if let Some(value) = fields.get(*slot as usize) {
                out.extend_from_slice(values.get(value));
            }
        }
        // Why sorted: routes must be visited in the order the program
        // lists them, as without the index, so records keep their order.
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use mon_compiler::ir::{BinaryOp, Expr, Value};

    use super::equality;

    fn field_eq(slot: u32, v: Value) -> Expr {
        Expr::Binary { op: BinaryOp::Eq, lhs: Box::new(Expr::Field(slot)), rhs: Box::new(Expr::Const(v)) }
    }

    #[test]
    fn finds_an_equality_conjunct_under_and() {
        let gt =
            Expr::Binary { op: BinaryOp::Gt, lhs: Box::new(Expr::Field(0)), rhs: Box::new(Expr::Const(Value::Int(3))) };
        let and = Expr::Binary {
            op: BinaryOp::And,
            lhs: Box::new(gt),
            rhs: Box::new(field_eq(2, Value::String("JOB-1".into()))),
        };
        assert_eq!(equality(&and), Some((2, vec![&Value::String("JOB-1".into())])));
    }

    #[test]
    fn leaves_numbers_and_disjunctions_unindexed() {
        // `amount == 5` also holds for 5.0: a hash lookup would miss it.
        assert_eq!(equality(&field_eq(0, Value::Int(5))), None);
        let or = Expr::Binary {
            op: BinaryOp::Or,
            lhs: Box::new(field_eq(0, Value::String("a".into()))),
            rhs: Box::new(field_eq(0, Value::String("b".into()))),
        };
        assert_eq!(equality(&or), None);
    }
}
