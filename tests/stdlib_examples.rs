//! Every worked example of every built-in function, run as a rule would run
//! it: the example's `call` text is parsed by the real parser, type-checked
//! and lowered by the compiler against the stdlib's signatures, and evaluated
//! by the runtime's interpreter, and the value must be the stated `result`
//! (VRL runs its function examples the same way).
//!
//! Why here and not in `stdlib/tests/examples.rs`: `mon-stdlib` sits below
//! the runtime (and must, since the runtime calls it), so its own tests
//! cannot reach the interpreter. The `mon` package is the one crate that
//! depends on the grammar, the compiler, the stdlib and the runtime, so the
//! test lives with it. `stdlib/tests/examples.rs` still calls each function
//! directly with the example's `args`; this test also checks that those
//! `args` are what the `call` text says, so the two cannot drift apart.
//!
//! A name in a call is a field of a probe event, with the parameter's type.
//! A name that is a whole argument (`date(booked_at, desk_zone)`) is a
//! required field whose value is the example's argument at that position:
//! the examples use such names for values known only at run time. A name
//! read through `??` (`len(nickname ?? "anonymous")`) is an optional field,
//! absent from the event. Every argument, evaluated as the rule passes it,
//! must equal the example's `args` entry, so the in-crate test and this one
//! run the function on the same values.

use mon_compiler::builtins::{Example, Param};
use mon_compiler::ir::{self, Expr, Value};
use mon_compiler::{compile, Function, Functions, NoSchemas, Renderer, SourceFile};
use mon_grammar::ast::{BinaryOp, ExprKind, Item, StmtKind};
use mon_runtime::eval::{eval, Env};

/// A program in which `call` is the `where` of the only step, compared with
/// itself: `==` accepts any type that the checker gives the call, and the
/// interpreter then evaluates the call as it would for a real event.
fn program_text(call: &str, fields: &[Field]) -> String {
    let mut declared = String::from("probe_key: string");
    for field in fields {
        let optional = if field.absent { "?" } else { "" };
        declared.push_str(&format!(", {}: {}{optional}", field.name, field.ty));
    }
    format!("event probe {{ {declared} }}\nworkflow example {{\n  key probe_key\n  expect probe where {call} == {call}\n}}\n")
}

/// A field of the probe event that the call reads.
struct Field {
    name: String,
    ty: String,
    /// Read as `name ?? default`: an optional field, absent from the event.
    absent: bool,
}

/// A name the call reads: `(argument position, name, read through `??`)`.
type NameRead = (usize, String, bool);

/// The names the call reads, as the parser sees them.
fn names_read(f: &dyn Function, call: &str) -> Result<Vec<NameRead>, String> {
    let (file, errors) = mon_grammar::parse(&program_text(call, &[]));
    if !errors.is_empty() {
        return Err(format!("does not parse: {errors:?}"));
    }
    let predicate = file
        .items
        .iter()
        .find_map(|item| match item {
            Item::Workflow(w) => w.stmts.iter().find_map(|s| match &s.kind {
                StmtKind::Step(step) => step.predicate.as_ref(),
                _ => None,
            }),
            _ => None,
        })
        .ok_or("the parser found no `where`")?;
    let ExprKind::Binary { lhs, .. } = &predicate.kind else {
        return Err(format!("parses as {:?}, not as one call", predicate.kind));
    };
    let ExprKind::Call { function, args } = &lhs.kind else {
        return Err(format!("parses as {:?}, not as a call", lhs.kind));
    };
    if function.name != f.name() {
        return Err(format!("calls `{}`, not `{}`", function.name, f.name()));
    }
    let mut names = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        match &arg.kind {
            ExprKind::Name(ident) => names.push((i, ident.name.clone(), false)),
            ExprKind::Binary { op: BinaryOp::Coalesce, lhs, .. } => match &lhs.kind {
                ExprKind::Name(ident) => names.push((i, ident.name.clone(), true)),
                _ => return Err(format!("argument {} reads something other than a field through `??`", i + 1)),
            },
            _ => {}
        }
    }
    Ok(names)
}

/// The mon type of a field read as argument `i`.
fn field_type(f: &dyn Function, example: &Example, i: usize) -> Result<String, String> {
    let signature = f.signature();
    let (_, param) = signature.params.get(i.min(signature.params.len().saturating_sub(1))).ok_or("no parameters")?;
    match param {
        Param::Exactly(ty) => Ok(ty.to_string()),
        // A name standing for a number: its example value says which kind.
        Param::Number | Param::Same => match example.args.get(i) {
            Some(Value::Float(_)) => Ok("float".into()),
            Some(Value::Int(_)) => Ok("int".into()),
            other => Err(format!("cannot declare a field for argument {} ({other:?})", i + 1)),
        },
    }
}

fn run(f: &dyn Function, example: &Example, functions: &dyn Functions) -> Result<(), String> {
    let mut fields: Vec<Field> = Vec::new();
    for (i, name, absent) in names_read(f, example.call)? {
        if !absent && example.args.get(i) == Some(&Value::Null) {
            // Why: the checker refuses an optional field as an argument
            // (E305), and a required one is never absent.
            return Err(format!(
                "argument {} is the field `{name}` with no value, which no checked rule can pass; \
                 write `{name} ?? default` for an absent optional field",
                i + 1
            ));
        }
        if !fields.iter().any(|field| field.name == name) {
            fields.push(Field { ty: field_type(f, example, i)?, name, absent });
        }
    }
    let sources = vec![SourceFile { path: "example.mon".into(), text: program_text(example.call, &fields) }];
    let compilation = compile(&sources, functions, &NoSchemas);
    if !compilation.diagnostics.is_empty() {
        let problems = Renderer { sources: &sources }.human(&compilation.diagnostics, false);
        let level = if compilation.has_errors() { "errors" } else { "warnings" };
        return Err(format!("{level} from the checker in\n{}\n{problems}", sources[0].text));
    }
    let program = compilation.program.ok_or("no program")?;

    let step = &program.workflows[0].steps[0];
    let Some(Expr::Binary { op: ir::BinaryOp::Eq, lhs, .. }) = step.relevance.as_ref() else {
        return Err(format!("the `where` was lowered to {:?}", step.relevance));
    };
    let Expr::Call { function, args } = &**lhs else {
        return Err(format!("the call was lowered to {lhs:?}"));
    };
    if function != f.name() || args.len() != example.args.len() {
        return Err(format!(
            "the call was lowered to `{function}` with {} arguments; the example lists {}",
            args.len(),
            example.args.len()
        ));
    }
    // The event: each field read as a whole argument has the example's
    // value for it; a field read through `??` is absent.
    let probe = &program.events[program.event_id("probe").ok_or("no probe event")? as usize];
    let mut slots = vec![Value::Null; probe.fields.len()];
    for (arg, value) in args.iter().zip(&example.args) {
        if let Expr::Field(slot) = arg {
            slots[*slot as usize] = value.clone();
        }
    }
    let env = Env { fields: &slots, kept: &[], functions };
    for (i, (arg, value)) in args.iter().zip(&example.args).enumerate() {
        let passed = eval(arg, &env);
        if passed != *value {
            return Err(format!("a rule passes {passed:?} as argument {}, but `args` says {value:?}", i + 1));
        }
    }
    let got = eval(lhs, &env);
    if got != example.result {
        return Err(format!("evaluates to {got:?}, the example says {:?}", example.result));
    }
    Ok(())
}

#[test]
fn every_example_call_parses_checks_and_evaluates_to_its_result() {
    let functions = mon_stdlib::registry();
    let mut failures = Vec::new();
    let mut examples = 0;
    for f in functions.iter() {
        for example in f.examples() {
            examples += 1;
            if let Err(why) = run(f, &example, functions) {
                failures.push(format!("{}: {why}", example.call));
            }
        }
    }
    assert!(examples >= 2 * functions.names().len(), "only {examples} examples");
    assert!(failures.is_empty(), "examples that fail when run as rules:\n{}", failures.join("\n"));
}
