//! The crate's only `unsafe` code: the executable memory cranelift-jit
//! fills, the function pointers into it, the call, and the string helper
//! the code calls back.
//!
//! Invariants, each relied on by one `unsafe` block below:
//!
//! 1. Code lives as long as its [`Code`]: the function pointers are kept
//!    in the same struct as the module and only handed out as a call
//!    ([`Code::call`]); the memory is freed in `Drop`, after which nothing
//!    can reach a pointer.
//! 2. A generated function has the signature [`Entry`] and reads
//!    `operands[i]` only for `i < inputs`, the number of inputs lowering
//!    registered for it; `call` checks the caller's slice is that long.
//! 3. String bytes passed to [`mon_jit_str_cmp`] are valid for the call:
//!    either an operand's (see `operand::Operand`, which sets a length
//!    only from a borrowed `&str`), or a constant owned by the guard next
//!    to its code. A length of zero is never dereferenced.
//!
//! Nothing here may keep a pointer past the call that received it.

#![allow(unsafe_code)]

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use mon_compiler::ir::Expr;

use crate::lower::{Lower, Unsupported};
use crate::operand::{Kind, Operand};
use crate::Input;

/// The generated function: operands in, one of `lower::{FALSE, TRUE,
/// NULL, BAIL}` out.
type Entry = extern "C" fn(*const Operand<'_>) -> u8;

/// A function compiled and waiting to be finalized: its id, the inputs it
/// reads and the strings it compares with; `None` when it stays interpreted.
type Pending = Option<(FuncId, Vec<Input>, Vec<Box<str>>)>;

const STR_CMP: &str = "mon_jit_str_cmp";

/// `str::cmp` of two byte ranges as -1, 0, 1, for generated code.
extern "C" fn mon_jit_str_cmp(a: *const u8, a_len: u64, b: *const u8, b_len: u64) -> i64 {
    // SAFETY: invariant 3: a non-zero length comes with a pointer to that
    // many live bytes; a zero length is never turned into a slice.
    let (a, b) = unsafe {
        let a: &[u8] = if a_len == 0 { &[] } else { std::slice::from_raw_parts(a, a_len as usize) };
        let b: &[u8] = if b_len == 0 { &[] } else { std::slice::from_raw_parts(b, b_len as usize) };
        (a, b)
    };
    a.cmp(b) as i64
}

/// A compiled function: where it starts and what it reads.
pub(crate) struct Function {
    entry: Entry,
    pub(crate) inputs: Box<[Input]>,
    /// The constant strings the code points at (invariant 3).
    _strings: Box<[Box<str>]>,
}

/// Executable code for a set of expressions, in one JIT module.
pub(crate) struct Code {
    module: Option<JITModule>,
    pub(crate) functions: Vec<Option<Function>>,
}

// SAFETY: the module's memory is only read (executed) after finalizing;
// `Code` hands out no interior mutability, and the generated functions
// only read their arguments, so sharing or moving it across threads is
// as safe as sharing the bytes it holds.
unsafe impl Send for Code {}
unsafe impl Sync for Code {}

/// Why nothing could be compiled at all (no native backend for this CPU).
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Compiles each expression (with the kinds of what it reads), one
/// function each; `None` where lowering said [`Unsupported`].
pub(crate) fn compile<'e>(
    expressions: impl IntoIterator<Item = (&'e Expr, &'e dyn Fn(Input) -> Option<Kind>)>,
) -> Result<Code, Unavailable> {
    let unavailable = |e: &dyn std::fmt::Display| Unavailable(e.to_string());
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| unavailable(&e))?;
    let isa = cranelift_native::builder()
        .map_err(|e| unavailable(&e))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| unavailable(&e))?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.symbol(STR_CMP, mon_jit_str_cmp as *const u8);
    let mut module = JITModule::new(builder);
    let pointer = module.target_config().pointer_type();

    let mut str_cmp_signature = module.make_signature();
    for ty in [pointer, types::I64, pointer, types::I64] {
        str_cmp_signature.params.push(AbiParam::new(ty));
    }
    str_cmp_signature.returns.push(AbiParam::new(types::I64));
    let str_cmp = module.declare_function(STR_CMP, Linkage::Import, &str_cmp_signature).map_err(|e| unavailable(&e))?;

    let mut signature = module.make_signature();
    signature.params.push(AbiParam::new(pointer));
    signature.returns.push(AbiParam::new(types::I8));

    let mut context = module.make_context();
    let mut builder_context = FunctionBuilderContext::new();
    let mut pending: Vec<Pending> = Vec::new();
    for (index, (expr, kind_of)) in expressions.into_iter().enumerate() {
        context.func.signature = signature.clone();
        context.func.name = UserFuncName::user(0, index as u32);
        let mut fb = FunctionBuilder::new(&mut context.func, &mut builder_context);
        let block = fb.create_block();
        fb.append_block_params_for_function_params(block);
        fb.switch_to_block(block);
        fb.seal_block(block);
        let operands = fb.block_params(block)[0];
        let str_cmp_ref = module.declare_func_in_func(str_cmp, fb.func);
        let mut lower = Lower::new(&mut fb, operands, pointer, str_cmp_ref, kind_of);
        let lowered: Result<_, Unsupported> = lower.condition(expr);
        let (inputs, strings) = (std::mem::take(&mut lower.inputs), std::mem::take(&mut lower.strings));
        match lowered {
            Ok(answer) => {
                fb.ins().return_(&[answer]);
                fb.finalize(module.target_config());
                let name = format!("guard_{index}");
                let id = module
                    .declare_function(&name, Linkage::Local, &context.func.signature)
                    .map_err(|e| unavailable(&e))?;
                module.define_function(id, &mut context).map_err(|e| unavailable(&e))?;
                pending.push(Some((id, inputs, strings)));
            }
            Err(_) => pending.push(None),
        }
        module.clear_context(&mut context);
    }
    module.finalize_definitions().map_err(|e| unavailable(&e))?;
    let functions = pending
        .into_iter()
        .map(|p| {
            p.map(|(id, inputs, strings)| {
                let address = module.get_finalized_function(id);
                // SAFETY: invariant 2: the function was defined with the
                // signature `Entry` describes (one pointer in, one byte
                // out, the platform's C convention).
                let entry = unsafe { std::mem::transmute::<*const u8, Entry>(address) };
                Function { entry, inputs: inputs.into(), _strings: strings.into() }
            })
        })
        .collect();
    Ok(Code { module: Some(module), functions })
}

impl Function {
    /// Runs the code over `operands`, one per input in order.
    pub(crate) fn call(&self, operands: &[Operand<'_>]) -> u8 {
        if operands.len() < self.inputs.len() {
            return crate::lower::BAIL as u8;
        }
        // Sound by invariant 1 (`self` is borrowed from the live `Code`),
        // invariant 2 (the length was checked just above) and invariant 3
        // (the operands borrow their strings for the duration of the call).
        (self.entry)(operands.as_ptr())
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            self.functions.clear();
            // SAFETY: invariant 1: the pointers into this memory were only
            // in `functions`, cleared above; no call can be running, as
            // calls borrow `self`.
            unsafe { module.free_memory() };
        }
    }
}
