//! Closing runs of consecutive descriptors with one `close_range(2)` each.
//!
//! The sentinel reservation frees all its slots before every read; they are
//! usually consecutive numbers (taken one after another at the lowest free
//! numbers), and one `close_range` closes a run of them for the cost of
//! entering the kernel once instead of once per slot. Linux 5.9 and later;
//! on older kernels the call fails (`ENOSYS`) and the caller closes one by one.
//!
//! rustix has no binding for `close_range`, so this module makes the raw
//! system call through libc: the only `unsafe` here, see [`close_range`].
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Closes every run of two or more consecutive numbers among `fds` with one
/// `close_range` each and removes those descriptors from `fds`; what is left
/// (single numbers, or runs the kernel would not close) stays for the caller
/// to close one by one. Sorts `fds` by number.
pub(crate) fn close_runs(fds: &mut Vec<OwnedFd>) {
    fds.sort_unstable_by_key(AsRawFd::as_raw_fd);
    let mut end = fds.len();
    while end > 0 {
        let mut start = end - 1;
        while start > 0 && fds[start - 1].as_raw_fd() + 1 == fds[start].as_raw_fd() {
            start -= 1;
        }
        // `fds[start..end]` are distinct owned descriptors numbered
        // `first..=last` without a gap: the range holds only numbers we own.
        let (first, last) = (fds[start].as_raw_fd(), fds[end - 1].as_raw_fd());
        if end - start >= 2 && close_range(first, last) {
            // Closed by the kernel: forgetting them keeps their `OwnedFd`
            // from closing the numbers again (someone else's by then).
            fds.drain(start..end).for_each(std::mem::forget);
        }
        end = start;
    }
}

/// `close_range(first, last, 0)`; true when the kernel closed the range.
///
/// Only [`close_runs`] calls it, with a range of descriptors it owns and
/// forgets afterwards, so no descriptor is closed twice and none that belongs
/// to anyone else is closed at all.
fn close_range(first: RawFd, last: RawFd) -> bool {
    let (Ok(first), Ok(last)) = (libc::c_uint::try_from(first), libc::c_uint::try_from(last))
    else {
        return false;
    };
    // SAFETY: a raw system call with three integer arguments; it reads and
    // writes no memory of this process. Which descriptors it closes is
    // argued at the caller.
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
    result == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_runs_and_leaves_what_it_does_not_own() {
        let (origin, _write_end) = rustix::pipe::pipe().expect("pipe");
        let mut fds: Vec<OwnedFd> = (0..6)
            .map(|_| rustix::io::fcntl_dupfd_cloexec(&origin, 0).expect("dup"))
            .collect();
        // Keep one number in the middle of the run out of the vector.
        let kept = fds.remove(2);
        let pipe = format!(
            "pipe:[{}]",
            rustix::fs::fstat(&origin).expect("fstat").st_ino
        );
        let ends = || {
            std::fs::read_dir("/proc/self/fd")
                .expect("/proc/self/fd")
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.as_os_str() == pipe.as_str())
                .count()
        };
        assert_eq!(ends(), 8);
        close_runs(&mut fds);
        // What could not go in one call is left for the caller to close.
        drop(fds);
        // The origin, the write end and the one left out, nothing else.
        assert_eq!(ends(), 3);
        assert!(rustix::io::fcntl_getfd(&kept).is_ok());
    }
}
