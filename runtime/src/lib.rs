//! The mon runtime: the engine that runs a compiled `Program` over events,
//! and the service around it.
//!
//! The pure core: decoding of the event envelope ([`event`]), the
//! reference expression interpreter ([`eval`]), the engine ([`engine`])
//! with its records ([`record`]), aggregates and statuses ([`aggregates`]),
//! and its drivers: replays on a virtual clock ([`simulate`]), `test`
//! blocks ([`testing`]) and the live input sequence ([`live`]). The core
//! must not do I/O or read the wall clock: time is always an argument, so
//! a test, a simulation and the live service give the same records for the
//! same input.
//!
//! The shell ([`service`]): Kafka, the journal and sled, HTTP, metrics. It
//! only feeds the core and carries its outputs; no engine module may use it
//! (`tests/architecture.rs` checks).

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
