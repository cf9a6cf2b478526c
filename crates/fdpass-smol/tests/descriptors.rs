//! The passer adds no descriptor of its own besides the socket (with the
//! default peek reservation): async-io's registration shares the core
//! passer's socket instead of duplicating it.
//!
//! Alone in its test binary so no other test opens descriptors meanwhile.
//! Linux only: it counts `/proc/self/fd`, and elsewhere the default
//! reservation is the sentinel one, which holds descriptors by design.
#![cfg(target_os = "linux")]

use fdpass_smol::Passer;

fn open_descriptors() -> usize {
    // Descriptors fdpass let go of are closed by a background thread, soon:
    // wait for those before counting.
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_pair_costs_exactly_its_two_sockets() {
    // The first passer starts async-io's reactor, which opens its own
    // descriptors once per process.
    drop(Passer::pair().unwrap());

    let before = open_descriptors();
    let (a, b) = Passer::pair().unwrap();
    let clones = (a.clone(), b.clone());
    assert_eq!(open_descriptors(), before + 2);
    drop((a, b, clones));
    assert_eq!(open_descriptors(), before);
}
