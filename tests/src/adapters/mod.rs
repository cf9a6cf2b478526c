//! One implementation of [`Adapter`](crate::Adapter) per fdpass adapter.

pub mod core;
pub mod mio;
pub mod smol;
pub mod tokio;
