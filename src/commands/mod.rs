//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod compile;
pub mod fmt;
pub mod simulate;
pub mod test;
