//! The mon runtime: the engine that runs a compiled `Program` over events.
//!
//! Today this crate holds the pure core: decoding of the event envelope
//! ([`event`]), the reference expression interpreter ([`eval`]), the
//! engine ([`engine`]) with its records ([`record`]), aggregates and
//! statuses ([`aggregates`]), and the two drivers that feed it on a virtual
//! clock: replays ([`simulate`]) and `test` blocks ([`testing`]). The core
//! must not do I/O or read the wall
//! clock: time is always an argument, so a test, a simulation and the live
//! service give the same records for the same input. The service shell
//! (Kafka, sled, HTTP) will live beside it and only feed it.

// Long-running code does not panic on input (STYLE.md lesson 10).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregates;
pub mod engine;
pub mod eval;
pub mod event;
pub mod live;
pub mod record;
pub mod service;
pub mod simulate;
pub mod testing;

pub use engine::{Engine, State};
pub use event::{Decoded, Decoder, Event, Rejection};
pub use record::{Kind, Record};
