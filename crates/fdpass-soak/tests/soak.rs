//! The soak in short, for CI: 13,000 pushes through the `fdpass-soak`
//! binary with its default runs (the classic wire with descriptors and the
//! native wire with the message mix, each with both reservation strategies
//! and 1, 64 and the library's default descriptors per message, then the
//! shipped defaults exactly), with every fault injected.
//! `docs/reliability.md` has the long runs.

use std::process::Command;
use std::time::Instant;

use fdpass_core::{Config, Reservation, Wire};

/// The schedule's seed: fixed, so CI is repeatable; set `FDPASS_SOAK_SEED`
/// to try another one (a failure prints the seed to replay).
fn seed() -> String {
    std::env::var("FDPASS_SOAK_SEED").unwrap_or_else(|_| "20240601".into())
}

/// The batch sizes a default run covers: one, a mid-sized batch and the
/// shipped default, whatever it is.
fn default_batches() -> Vec<usize> {
    let mut sizes = vec![1, 64, Config::default().max_fds_per_message];
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

#[test]
fn short_soak_covers_both_wires_both_strategies_the_message_mix_and_the_shipped_defaults() {
    let seed = seed();
    let start = Instant::now();
    let total = 13_000;
    // No --wire, --reservation or --max-fds: what a default run covers is
    // under test.
    let output = Command::new(env!("CARGO_BIN_EXE_fdpass-soak"))
        .args(["--seed", &seed, "--count", &total.to_string()])
        .output()
        .expect("running fdpass-soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fdpass-soak failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("run ")).collect();
    let mut labels = Vec::new();
    for (wire, what) in [("classic", "descriptors"), ("native", "message mix")] {
        for strategy in ["peek", "sentinel"] {
            for batch in default_batches() {
                labels.push(format!("({wire}, {strategy}, max_fds {batch}, {what})"));
            }
        }
    }
    // What the library ships, run as it is.
    let shipped = Config::default();
    assert_eq!(shipped.wire, Wire::Native);
    assert_eq!(shipped.reservation, Reservation::Auto);
    labels.push(format!(
        "(shipped defaults: native, auto, max_fds {}, message mix)",
        shipped.max_fds_per_message
    ));
    assert_eq!(
        runs.len(),
        labels.len(),
        "one run per wire, strategy and batch size, and one of the defaults:\n{stdout}"
    );
    let per_run = total / labels.len();
    for (run, label) in runs.iter().zip(&labels) {
        assert!(run.contains(label.as_str()), "{run}");
        let unit = if label.contains("message mix") {
            "messages ("
        } else {
            "descriptors in"
        };
        assert!(run.contains(&format!(": {per_run} {unit}")), "{run}");
    }
    assert!(
        stdout.contains(&format!("fdpass-soak: PASS: {total} pushes")),
        "{stdout}"
    );
    println!("{stdout}");
    println!("short soak: {:.1} s", start.elapsed().as_secs_f64());
}

#[test]
fn bad_usage_exits_2_without_running() {
    let output = Command::new(env!("CARGO_BIN_EXE_fdpass-soak"))
        .args(["--count", "10", "--seconds", "1"])
        .output()
        .expect("running fdpass-soak");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not both"));
}
