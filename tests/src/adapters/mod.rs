//! One implementation of [`Adapter`](crate::Adapter) per fdpass adapter.

pub mod tokio;

// fdpass-mio: `pub mod mio;` here, with `src/adapters/mio.rs` implementing
// `Adapter` for a type that owns a `mio::Poll` and the passer, then one
// `conformance_suite!` line in `tests/conformance.rs`.

// fdpass-smol: `pub mod smol;` here, with `src/adapters/smol.rs` implementing
// `Adapter` over `async_io::block_on`, then one `conformance_suite!` line in
// `tests/conformance.rs`.
