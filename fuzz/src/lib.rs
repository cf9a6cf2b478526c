//! What the fuzz targets share: the application's side of a passer (its
//! calls and the checks on everything that comes back) and the process's
//! descriptor table (counting it, and limiting it).
//!
//! The targets themselves are in `fuzz_targets/`; `docs/reliability.md` says
//! how to run them.

pub mod app;
pub mod table;
