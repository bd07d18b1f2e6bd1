//! The mon language server: the compiler's diagnostics, quick fixes,
//! formatting, hover, go to definition, references, rename, symbols,
//! completion, folding ranges and semantic tokens for `.mon` files, over
//! the Language Server Protocol on stdio (`mon lsp`).
//!
//! It works on programs as `mon check` does: an open file is compiled with
//! the other `.mon` files of its rules directory (see [`workspace`]), with
//! the editor's unsaved text in place of the disk's. Everything it says
//! comes from `mon-grammar` and `mon-compiler` (the same parser, checker,
//! messages and formatter as the CLI); it must not invent its own checks or
//! words, must not write files (edits go back to the editor), and must not
//! panic or stop on any input: positions are clamped, and a failing feature
//! answers with an error instead of ending the session.
//!
//! Protocol crate: `lsp-server` + `lsp-types` (rust-analyzer's). The server
//! is synchronous — compiling a rules directory takes milliseconds, so one
//! thread answering in order is simpler than an async runtime and needs no
//! locks around the document store; `lsp-server` is just the JSON-RPC
//! framing and a channel, with no executor to pull in (tower-lsp-server
//! would bring tokio and futures for no gain here).

// `lsp_types::Uri` hashes and compares by its text, which never changes;
// clippy sees a cell inside `fluent_uri` and warns about every map keyed by it.
#![allow(clippy::mutable_key_type)]

pub mod convert;
pub mod documents;
pub mod features;
pub mod index;
pub mod server;
pub mod workspace;

pub use server::Ending;

/// Serves one editor session on stdin/stdout until it says `exit`.
pub fn run_stdio() -> Result<Ending, String> {
    let (connection, io_threads) = lsp_server::Connection::stdio();
    let ending = server::run(connection)?;
    // The connection was moved into the server and dropped with it, so the
    // writer thread ends once it has flushed the last messages.
    io_threads.join().map_err(|e| e.to_string())?;
    Ok(ending)
}
