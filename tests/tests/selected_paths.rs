//! The suite runs through the system-call paths its build selected: the
//! portable ones (close-on-exec set after receipt, pipes without `pipe2`, the
//! sentinel reservation) when built with the `portable-syscalls` feature, the
//! native ones otherwise. Every adapter builds its passers on
//! `SystemCalls::default()`, so checking the adapters' passers here checks
//! what every scenario of `conformance.rs` ran.

use std::os::fd::OwnedFd;

use fdpass_core::sys::{Sys, SystemCalls};
use fdpass_core::{Config, Reservation};
use rustix::io::FdFlags;

const PORTABLE: bool = cfg!(feature = "portable-syscalls");

/// What `Reservation::Auto` must have become for this build.
fn expected_reservation() -> Reservation {
    if PORTABLE || !cfg!(any(target_os = "linux", target_os = "android")) {
        Reservation::Sentinel
    } else {
        Reservation::Peek
    }
}

#[test]
fn the_default_system_calls_are_the_paths_this_build_selected() {
    let mut sys = SystemCalls::default();
    assert_eq!(sys.is_portable(), PORTABLE);
    assert_eq!(
        sys.peek_is_lossless(),
        expected_reservation() == Reservation::Peek
    );
}

#[test]
fn every_adapter_resolves_the_default_reservation_for_the_selected_paths() {
    let (a, _b) = fdpass_mio::Passer::pair().expect("mio pair");
    assert_eq!(a.config().reservation, expected_reservation());
    let (a, _b) = fdpass_smol::Passer::pair().expect("smol pair");
    assert_eq!(a.config().reservation, expected_reservation());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let (a, _b) = fdpass_tokio::Passer::pair().expect("tokio pair");
    assert_eq!(a.config().reservation, expected_reservation());
    assert_eq!(Config::default().reservation, Reservation::Auto);
}

#[test]
fn descriptors_received_on_the_selected_paths_are_close_on_exec() {
    let (a, b) = fdpass_smol::Passer::pair().expect("smol pair");
    let (read_end, _write_end) = SystemCalls::default().pipe().expect("pipe");
    rustix::io::fcntl_setfd(&read_end, FdFlags::empty()).expect("clear FD_CLOEXEC");
    let received: OwnedFd = smol::block_on(async {
        a.send(read_end).await.expect("send");
        b.recv().await.expect("recv").expect("a descriptor")
    });
    let flags = rustix::io::fcntl_getfd(&received).expect("F_GETFD");
    assert!(flags.contains(FdFlags::CLOEXEC), "{flags:?}");
}
