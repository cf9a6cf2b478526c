//! Descriptors the scenarios pass and inspect: numbered pipes, descriptor
//! modes, counts, a full table, temporary directories, a plain peer's read.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
use rustix::pipe::PipeFlags;

use crate::{timed_out, Config, Error, OVERALL};

/// A pipe whose write end got `number` (8 bytes, little-endian) and was then
/// closed; returns the read end. Reading it back to end of file proves which
/// descriptor arrived, and that no copy of its write end survived anywhere.
pub fn numbered_pipe(number: u64) -> OwnedFd {
    numbered_pipe_with(number, PipeFlags::empty())
}

/// [`numbered_pipe`] with extra flags (`O_NONBLOCK`) on both ends.
pub fn numbered_pipe_with(number: u64, flags: PipeFlags) -> OwnedFd {
    let (read_end, write_end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | flags).expect("pipe");
    let written = rustix::io::write(&write_end, &number.to_le_bytes()).expect("write a number");
    assert_eq!(written, 8, "a fresh pipe takes 8 bytes at once");
    read_end
}

/// Reads back the number of a [`numbered_pipe`] and closes it.
pub fn read_number(fd: OwnedFd) -> u64 {
    peek_number(&fd)
}

/// Reads back the number of a [`numbered_pipe`], leaving the descriptor open
/// (it opens nothing, so it works in a full descriptor table).
pub fn peek_number(fd: impl AsFd) -> u64 {
    let mut bytes = [0u8; 9];
    let mut len = 0;
    loop {
        match rustix::io::read(&fd, &mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => panic!("reading a numbered pipe failed: {e}"),
        }
        assert!(len <= 8, "a numbered pipe holds 8 bytes, got more");
    }
    assert_eq!(len, 8, "a numbered pipe holds 8 bytes");
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// The descriptor a receive must have brought.
pub fn expect_fd(received: Result<Option<OwnedFd>, Error>) -> OwnedFd {
    match received {
        Ok(Some(fd)) => fd,
        Ok(None) => panic!("the peer closed before sending the expected descriptor"),
        Err(e) => panic!("receiving failed: {e}"),
    }
}

/// A receive must have seen the peer's orderly close.
pub fn expect_closed(received: Result<Option<OwnedFd>, Error>) {
    match received {
        Ok(None) => {}
        Ok(Some(_)) => panic!("a descriptor arrived where end of stream was expected"),
        Err(e) => panic!("expected the peer's orderly close, got an error: {e}"),
    }
}

/// Unwraps the result of a passer call, naming the call on failure.
pub fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// The peer's end of a connection handed over by [`fdpass_core::child`], in
/// a child process.
pub fn inherited() -> OwnedFd {
    fdpass_core::child::adopt_inherited().expect("adopt the inherited socket")
}

/// Wraps the inherited socket (see [`inherited`]) in an adapter.
pub fn inherited_passer<A: crate::Adapter>(config: Config) -> A {
    ok(A::new(inherited(), config), "wrapping the inherited socket")
}

/// Whether `O_NONBLOCK` is set on the open file description of `fd`.
pub fn is_nonblocking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .expect("read descriptor status flags")
        .contains(OFlags::NONBLOCK)
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub fn set_nonblocking(fd: impl AsFd, on: bool) {
    let flags = rustix::fs::fcntl_getfl(&fd).expect("read descriptor status flags");
    let flags = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(&fd, flags).expect("set descriptor status flags");
}

/// How many descriptors this process has open. Meaningful only in a process
/// of its own: test threads open and close descriptors concurrently.
pub fn open_descriptors() -> usize {
    // Descriptors fdpass let go of are closed by a background thread, soon:
    // wait for those before counting.
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    std::fs::read_dir("/proc/self/fd")
        .expect("list open descriptors")
        .count()
}

/// How many descriptors of this process are ends of the pipes whose inodes
/// are `inodes` (after pending disposals finished): a leak check that other
/// threads opening and closing their own descriptors cannot disturb.
pub fn open_pipe_ends(inodes: &[u64]) -> usize {
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    let names: Vec<String> = inodes.iter().map(|i| format!("pipe:[{i}]")).collect();
    std::fs::read_dir("/proc/self/fd")
        .expect("list open descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| names.iter().any(|n| target.as_os_str() == n.as_str()))
        .count()
}

/// Lowers this process's soft `RLIMIT_NOFILE` to `limit`. Child processes
/// only.
pub fn limit_descriptors(limit: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: current.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");
}

/// Opens `/dev/null` until the descriptor table is full; returns what it
/// opened. Child processes only.
pub fn fill_table() -> Vec<OwnedFd> {
    let mut filler = Vec::new();
    loop {
        match open_dev_null() {
            Ok(fd) => filler.push(fd),
            Err(Errno::MFILE) => return filler,
            Err(e) => panic!("open /dev/null failed: {e}"),
        }
    }
}

/// Opens `/dev/null`; a full table is `EMFILE`.
pub fn open_dev_null() -> Result<OwnedFd, Errno> {
    rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// Waits until `fd` is readable; fails after [`OVERALL`].
pub fn wait_readable(fd: impl AsFd, what: &str) {
    let timeout = Timespec::try_from(OVERALL).expect("a representable timeout");
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => timed_out(what),
            Ok(_) => return,
            Err(Errno::INTR) => {}
            Err(e) => panic!("poll while waiting for {what} failed: {e}"),
        }
    }
}

/// A private directory under the system temporary directory, unique per
/// process and call, removed with everything in it on drop (also when the
/// test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "fdpass-conformance-{}-{tag}-{n}",
            std::process::id()
        ));
        // A leftover of an earlier run that had the same process id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create a temporary directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One blocking `recvmsg` as a plain peer makes it, with room for `max` bytes
/// and `max` descriptors; the descriptors of that one message, or `None` at
/// end of stream. Panics unless the message is fdpass's wire: not truncated,
/// only `SCM_RIGHTS`, and one zero byte per descriptor. A stream socket never
/// joins two messages that carry descriptors.
pub fn recv_raw(socket: impl AsFd, max: usize) -> Option<Vec<OwnedFd>> {
    let mut bytes = vec![0xff_u8; max];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    if msg.bytes == 0 {
        return None;
    }
    assert!(
        !msg.flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC),
        "a truncated message: {:?}",
        msg.flags
    );
    assert!(
        bytes[..msg.bytes].iter().all(|&b| b == 0),
        "the byte that carries a descriptor is zero"
    );
    let mut fds = Vec::new();
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmRights(rights) => fds.extend(rights),
            _ => panic!("a control message other than SCM_RIGHTS"),
        }
    }
    assert_eq!(msg.bytes, fds.len(), "one byte per descriptor");
    Some(fds)
}
