//! The mon runtime: the pure core that runs a compiled `Program` over
//! events.
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
//! This crate must not depend on an I/O crate (tokio, rdkafka, sled, axum,
//! tracing, …), touch the filesystem or the network, or read a clock. The
//! shell that does those things is the `mon-service` crate, which feeds
//! the core and carries its outputs; `tests/architecture.rs` checks this
//! crate's dependencies with `cargo metadata`.

// Long-running code does not panic on input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregates;
pub mod alerts;
pub mod dry_run;
pub mod engine;
pub mod eval;
pub mod event;
pub mod lifecycle;
pub mod live;
pub mod partitioned;
pub mod record;
pub mod simulate;
pub mod testing;

pub use engine::{Engine, State};
pub use event::{Decoded, Decoder, Event, Rejection};
pub use record::{Kind, Record};
