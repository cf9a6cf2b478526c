//! One implementation of [`Adapter`](crate::Adapter) per fdpass adapter.

pub mod mio;
pub mod smol;
pub mod tokio;
