//! The delivery task against a scripted receiver, on a real sled store in
//! a temporary directory: retries, the failed log, order within a group,
//! the bound on sends in flight, and the backoff's arithmetic.

use super::*;
