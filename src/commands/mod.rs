//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod compile;
pub mod demo;
pub mod fmt;
pub mod lsp;
pub mod rules;
pub mod run;
pub mod simulate;
pub mod test;
pub mod token;
