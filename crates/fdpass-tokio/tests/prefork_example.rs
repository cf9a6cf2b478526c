//! `examples/prefork.rs`, run as its users run it: real worker processes,
//! real TCP clients, and the example's own checks. The example's `main`
//! picks the worker's role from its arguments; here the test binary re-runs
//! itself as the worker instead, and calls the same functions.

#[path = "../examples/prefork.rs"]
#[allow(dead_code)] // `main` is the example's; the test calls its parts.
mod prefork;

use std::process::Stdio;

const ROLE_VAR: &str = "FDPASS_TOKIO_EXAMPLE_ROLE";
const TEST: &str =
    "the_prefork_example_greets_every_client_by_the_address_sent_with_its_connection";

#[tokio::test]
async fn the_prefork_example_greets_every_client_by_the_address_sent_with_its_connection() {
    if std::env::var_os(ROLE_VAR).is_some() {
        prefork::worker().await.expect("the worker");
        return;
    }
    let program = std::env::current_exe().expect("the test binary");
    // A worker that ran no test would never take its connections: the
    // parent's sends or its clients would fail.
    prefork::parent(|| {
        let mut command = tokio::process::Command::new(&program);
        command
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, "worker")
            .stdin(Stdio::null())
            // The harness's lines; a failing worker's reason goes to stderr.
            .stdout(Stdio::null());
        command
    })
    .await
    .expect("every client greeted by its address");
}
