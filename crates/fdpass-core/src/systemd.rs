//! systemd's socket activation and file-descriptor store, as named
//! descriptor sets ([`NamedFds`]) that can be handed on like any other.
//!
//! The protocols themselves (`sd_listen_fds(3)`: `LISTEN_PID`, `LISTEN_FDS`,
//! `LISTEN_FDNAMES`; `sd_pid_notify_with_fds(3)`: `FDSTORE=1`, `FDNAME=`)
//! are the `sd-notify` crate's; this module turns their raw numbers into
//! owned descriptors, once, with names. Needs the `systemd` feature.
//!
//! ```
//! // A process that was not socket-activated gets an empty set.
//! let fds = fdpass_core::systemd::listen_fds()?;
//! assert!(fds.is_empty() || std::env::var_os("LISTEN_FDS").is_some());
//! # Ok::<(), std::io::Error>(())
//! ```
// `sd-notify` hands out descriptor numbers (`RawFd`): owning them takes one
// `from_raw_fd`, justified where it is made.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::handover::NamedFds;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The descriptors systemd passed this process by socket activation (or
/// from its file-descriptor store, which it passes back the same way at
/// the next start), by the names in `LISTEN_FDNAMES`.
///
/// Honours `LISTEN_PID`: variables inherited from an ancestor (a different
/// pid) give an empty set, and their numbers are left alone. The
/// descriptors are made close-on-exec, as `sd_listen_fds(3)` does. The
/// variables are not removed (removing them is unsound once threads run);
/// `LISTEN_PID` keeps children from taking them, and the upgrade lifecycle
/// (`fdpass_tokio::upgrade::Upgrader`) removes them from a successor's
/// environment.
///
/// Names: systemd gives every descriptor of one socket unit the unit's name
/// unless `FileDescriptorName=` says otherwise, and `unknown` when
/// `LISTEN_FDNAMES` is absent. A set needs distinct names, so the second
/// descriptor of a name becomes `name#2`, the third `name#3`, in
/// `LISTEN_FDS` order. Each entry's metadata is its position among the
/// passed descriptors, in decimal (`0` for the descriptor at number 3).
///
/// # Errors
///
/// - [`io::ErrorKind::AlreadyExists`]: they were taken already in this
///   process (each number has one owner).
/// - [`io::ErrorKind::InvalidInput`]: for this process's pid, a malformed
///   `LISTEN_FDS` or `LISTEN_FDNAMES` (a name count that does not match);
///   nothing is taken. A `LISTEN_PID` that is not this process's pid (or
///   not a number) gives an empty set.
/// - `EBADF` and other errors of making them close-on-exec: a number that
///   is not open.
///
/// ```
/// let first = fdpass_core::systemd::listen_fds();
/// if std::env::var_os("LISTEN_FDS").is_none() {
///     assert!(first?.is_empty());
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_fds() -> io::Result<NamedFds> {
    // sd-notify 0.5 reads LISTEN_FDNAMES even when LISTEN_PID names another
    // process, and then reports a name count that does not match the empty
    // set as "invalid LISTEN_FDNAMES": variables inherited from a
    // socket-activated ancestor must give an empty set, so the pid is
    // compared here first.
    let for_this_process = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_this_process {
        return Ok(NamedFds::new());
    }
    let passed: Vec<(i32, String)> = sd_notify::listen_fds_with_names()?.collect();
    if passed.is_empty() {
        return Ok(NamedFds::new());
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the socket-activated descriptors were taken already in this process; keep the first set",
        ));
    }
    let mut set = NamedFds::new();
    for (position, (number, name)) in passed.into_iter().enumerate() {
        // SAFETY: `sd_notify::listen_fds_with_names` returned this number
        // only because LISTEN_PID names this process and LISTEN_FDS covers
        // it: the service manager passed it to this very process, and it
        // checked it is open (its fcntl(F_SETFD) succeeded). By the
        // `sd_listen_fds(3)` contract the numbers from 3 are reserved for
        // these descriptors, so nothing else in the process owns them, and
        // TAKEN makes this the one place that takes them.
        let fd = unsafe { OwnedFd::from_raw_fd(number) };
        let name = distinct_name(&set, &name);
        set.insert_with_meta(&name, fd, position.to_string())
            .map_err(io::Error::from)?;
    }
    Ok(set)
}

/// `name`, or `name#2`, `name#3`, ... for the first that is not in `set`;
/// a name systemd allows and the set does not (too long, say) is shortened
/// or replaced by `unknown` first.
fn distinct_name(set: &NamedFds, name: &str) -> String {
    let base: String = if crate::handover::is_valid_name(name) {
        name.to_owned()
    } else {
        "unknown".to_owned()
    };
    if set.get(&base).is_none() {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("#{n}");
            let keep = base.len().min(crate::handover::MAX_NAME_LEN - suffix.len());
            format!("{}{suffix}", &base[..keep])
        })
        .find(|candidate| set.get(candidate).is_none())
        .unwrap_or(base)
}

/// Stores every descriptor of `fds` in systemd's file-descriptor store
/// under its name (`FDSTORE=1`, `FDNAME=<name>`, one notification per
/// descriptor, to `NOTIFY_SOCKET`), so that it survives a restart of the
/// service: systemd passes stored descriptors back at the next start, read
/// with [`listen_fds`]. The service needs `FileDescriptorStoreMax=` above
/// zero. Copies are sent; the set stays open here.
///
/// Does nothing and returns `Ok(false)` when `NOTIFY_SOCKET` is not set
/// (not started by systemd); `Ok(true)` once every descriptor was sent.
///
/// # Errors
///
/// Connecting to or sending on `NOTIFY_SOCKET` failed (for example
/// `ECONNREFUSED` when nothing listens there); descriptors sent before the
/// failure are stored.
///
/// ```
/// let (r, _w) = std::io::pipe()?;
/// let mut fds = fdpass_core::handover::NamedFds::new();
/// fds.insert("input", r.into())?;
/// if std::env::var_os("NOTIFY_SOCKET").is_none() {
///     assert!(!fdpass_core::systemd::store_fds(&fds)?);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn store_fds(fds: &NamedFds) -> io::Result<bool> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(false);
    }
    for name in fds.names() {
        let Some(fd) = fds.get(name) else { continue };
        sd_notify::notify_with_fds(
            &[
                sd_notify::NotifyState::FdStore,
                sd_notify::NotifyState::FdName(name),
            ],
            &[fd.as_fd()],
        )?;
    }
    Ok(true)
}

/// Removes the descriptors stored under `name` from systemd's store
/// (`FDSTOREREMOVE=1`, `FDNAME=<name>`). `Ok(false)` without
/// `NOTIFY_SOCKET`.
///
/// # Errors
///
/// As [`store_fds`].
///
/// ```
/// if std::env::var_os("NOTIFY_SOCKET").is_none() {
///     assert!(!fdpass_core::systemd::remove_stored("input")?);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_stored(name: &str) -> io::Result<bool> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(false);
    }
    sd_notify::notify(&[
        sd_notify::NotifyState::FdStoreRemove,
        sd_notify::NotifyState::FdName(name),
    ])?;
    Ok(true)
}
