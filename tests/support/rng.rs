//! The binary's SplitMix64 (`src/rng.rs`), for tests that need the same
//! reproducible random numbers.
//!
//! Include with `#[path = "support/rng.rs"] mod rng;`. An integration test
//! is a crate of its own and cannot import the `mon` binary's modules, so
//! this compiles the very file the binary does instead of keeping a copy
//! that could drift from it.
#![allow(dead_code)]

#[path = "../../src/rng.rs"]
mod splitmix;

pub use splitmix::*;
