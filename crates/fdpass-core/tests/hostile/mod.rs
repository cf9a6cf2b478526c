//! Shared by `hostile_peers.rs` and `fuzz_seam.rs`: descriptors that carry a
//! per-test tag in their name, so that a test counts its own open descriptors
//! while other tests run in parallel threads of the same process; a raw peer
//! that writes whatever it likes with `sendmsg`; and (in [`scripted`]) a `Sys`
//! whose every answer comes from a script.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod scripted;

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{memfd_create, MemfdFlags};
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, UCred};

/// A name prefix unique to one test (or one fuzz case) in this process and
/// among processes: every descriptor made through it is a memfd whose name
/// starts with the prefix, which `/proc/self/fd` shows.
#[derive(Debug, Clone)]
pub struct Tag {
    prefix: String,
}

impl Tag {
    pub fn new(name: &str) -> Tag {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Tag {
            prefix: format!("fdpass-t{}-{n}-{name}-", std::process::id()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new close-on-exec memfd named `<prefix><label>`.
    pub fn memfd(&self, label: &str) -> OwnedFd {
        memfd_create(format!("{}{label}", self.prefix), MemfdFlags::CLOEXEC).expect("memfd_create")
    }

    /// Descriptors of this process, open right now, made through this tag.
    pub fn open(&self) -> Vec<String> {
        // Descriptors fdpass let go of are closed by a background thread, soon:
        // wait for those before counting.
        assert!(
            fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
            "pending disposals did not finish"
        );
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd") {
            let Ok(entry) = entry else { continue };
            // Other threads open and close descriptors meanwhile: an entry
            // may be gone by the time it is read.
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if let Some(label) = memfd_name(&target).and_then(|n| n.strip_prefix(&self.prefix)) {
                found.push(label.to_owned());
            }
        }
        found
    }

    /// The label of `fd` if it was made through this tag.
    pub fn label_of(&self, fd: RawFd) -> Option<String> {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let target = target.to_string_lossy();
        Some(memfd_name(&target)?.strip_prefix(&self.prefix)?.to_owned())
    }

    /// Panics unless every descriptor made through this tag is closed.
    pub fn assert_none_open(&self, when: &str) {
        let open = self.open();
        assert!(open.is_empty(), "{when}: still open: {open:?}");
    }
}

/// The memfd name inside a `/proc/self/fd` link target.
fn memfd_name(link: &str) -> Option<&str> {
    let name = link.strip_prefix("/memfd:")?;
    Some(name.strip_suffix(" (deleted)").unwrap_or(name))
}

/// What a raw peer attaches to one `sendmsg`.
#[derive(Default)]
pub struct Raw<'a> {
    pub bytes: &'a [u8],
    pub fds: &'a [BorrowedFd<'a>],
    /// Attach `SCM_CREDENTIALS` with this process's own pid, uid and gid (the
    /// only ones an unprivileged sender may claim).
    pub credentials: bool,
}

/// One non-blocking `sendmsg` as any program could write it, with no fdpass
/// on this side: whatever bytes and control messages the test chooses.
pub fn send_raw(socket: &OwnedFd, raw: Raw<'_>) -> Result<usize, Errno> {
    let space = rustix::cmsg_space!(ScmRights(raw.fds.len()), ScmCredentials(1));
    let mut storage = vec![MaybeUninit::<u8>::uninit(); space];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    if raw.credentials {
        let ours = UCred {
            pid: rustix::process::getpid(),
            uid: rustix::process::getuid(),
            gid: rustix::process::getgid(),
        };
        assert!(control.push(SendAncillaryMessage::ScmCredentials(ours)));
    }
    if !raw.fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(raw.fds)));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(raw.bytes)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )
}
