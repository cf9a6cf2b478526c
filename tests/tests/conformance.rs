//! The conformance suite, once per adapter: `<adapter>::<scenario>`.

fdpass_conformance::conformance_suite!(core, fdpass_conformance::adapters::core::Core, messages);
fdpass_conformance::conformance_suite!(tokio, fdpass_conformance::adapters::tokio::Tokio, messages);
fdpass_conformance::conformance_suite!(mio, fdpass_conformance::adapters::mio::Mio, messages);
fdpass_conformance::conformance_suite!(smol, fdpass_conformance::adapters::smol::Smol, messages);
