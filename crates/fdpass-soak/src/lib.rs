//! Soak and fault-injection harness for fdpass.
//!
//! The `fdpass-soak` binary runs two processes that pass numbered
//! descriptors (on the native wire, messages of payloads and numbered
//! descriptors) both ways through `fdpass_core::Passer`s driven by plain
//! `poll(2)` loops, while each injects faults into itself (a lowered
//! descriptor limit, a filled table, threads churning descriptors, bursts
//! that fill the socket buffer) from a printed seed. It checks that nothing
//! is lost, duplicated or reordered and that both processes' descriptor
//! counts return to their baselines. `docs/reliability.md` has the figures.
//!
//! This library holds the pieces the binary and the fault tests share.

pub mod drive;
pub mod endpoint;
pub mod faults;
pub mod fdcount;
pub mod mix;
pub mod payload;
pub mod rng;
pub mod stats;
