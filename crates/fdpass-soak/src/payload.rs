//! Numbered descriptors: each one passed is a pipe or a memfd that carries
//! its sequence number, so the receiver can tell loss, duplication and
//! reordering apart, and can check that it got the kind of file that was sent.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, MemfdFlags};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use crate::rng::mix;

/// Bytes each numbered descriptor carries.
pub const LEN: usize = 16;

const MAGIC: &[u8; 6] = b"fdpass";

/// What kind of file a numbered descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A memfd holding the number at offset 0.
    Memfd,
    /// The read end of a pipe holding the number, its write end closed.
    Pipe,
}

impl Kind {
    /// The kind of the descriptor numbered `seq` in a stream seeded `seed`:
    /// a pure function of both, so a replay sends the same kinds.
    ///
    /// ```
    /// use fdpass_soak::payload::Kind;
    /// assert_eq!(Kind::for_seq(7, 100), Kind::for_seq(7, 100));
    /// ```
    pub fn for_seq(seed: u64, seq: u64) -> Kind {
        if mix(seed ^ mix(seq)) & 1 == 0 {
            Kind::Memfd
        } else {
            Kind::Pipe
        }
    }
}

/// What a numbered descriptor says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    /// Position in its stream, from 0.
    pub seq: u64,
    /// The stream's last descriptor.
    pub last: bool,
    /// The kind of file.
    pub kind: Kind,
}

impl Numbered {
    fn encode(&self) -> [u8; LEN] {
        let mut bytes = [0u8; LEN];
        bytes[..8].copy_from_slice(&self.seq.to_le_bytes());
        bytes[8] = match self.kind {
            Kind::Memfd => 0,
            Kind::Pipe => 1,
        };
        bytes[9] = u8::from(self.last);
        bytes[10..].copy_from_slice(MAGIC);
        bytes
    }

    fn decode(bytes: &[u8; LEN]) -> Result<Numbered, String> {
        if &bytes[10..] != MAGIC {
            return Err(format!("not a numbered descriptor: {bytes:02x?}"));
        }
        let kind = match bytes[8] {
            0 => Kind::Memfd,
            1 => Kind::Pipe,
            other => return Err(format!("unknown kind {other}")),
        };
        let last = match bytes[9] {
            0 => false,
            1 => true,
            other => return Err(format!("bad last flag {other}")),
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        Ok(Numbered {
            seq: u64::from_le_bytes(seq),
            last,
            kind,
        })
    }
}

/// A new close-on-exec descriptor carrying `n`. A full table is
/// `Err(Errno::MFILE)` (or `NFILE`), for the caller to retry later.
///
/// ```
/// use fdpass_soak::payload::{make, read, Kind, Numbered};
/// for kind in [Kind::Memfd, Kind::Pipe] {
///     let n = Numbered { seq: 41, last: true, kind };
///     let fd = make(n).unwrap();
///     assert_eq!(read(&fd).unwrap(), n);
/// }
/// ```
pub fn make(n: Numbered) -> Result<OwnedFd, Errno> {
    let bytes = n.encode();
    match n.kind {
        Kind::Memfd => {
            let fd = rustix::fs::memfd_create("fdpass-soak", MemfdFlags::CLOEXEC)?;
            let written = retry_intr(|| rustix::io::pwrite(&fd, &bytes, 0))?;
            assert_eq!(written, LEN, "a short write into a new memfd");
            Ok(fd)
        }
        Kind::Pipe => {
            let (read_end, write_end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
            // Far less than a pipe's buffer: the write never blocks.
            let written = retry_intr(|| rustix::io::write(&write_end, &bytes))?;
            assert_eq!(written, LEN, "a short write into a new pipe");
            Ok(read_end)
        }
    }
}

/// Reads what a received descriptor carries and checks that its file is of
/// the kind it says. Needs no free descriptor slot.
pub fn read(fd: &OwnedFd) -> Result<Numbered, String> {
    let stat = rustix::fs::fstat(fd).map_err(|e| format!("fstat: {e}"))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    let mut bytes = [0u8; LEN];
    let n = match file_type {
        FileType::RegularFile => {
            if stat.st_size != LEN as i64 {
                return Err(format!("a memfd of {} bytes, not {LEN}", stat.st_size));
            }
            let got = retry_intr(|| rustix::io::pread(fd, &mut bytes, 0))
                .map_err(|e| format!("pread: {e}"))?;
            if got != LEN {
                return Err(format!("read {got} of {LEN} bytes from a memfd"));
            }
            Numbered::decode(&bytes)?
        }
        FileType::Fifo => {
            // The writer wrote all of it before sending, so it is all there.
            let got = retry_intr(|| rustix::io::read(fd.as_fd(), &mut bytes))
                .map_err(|e| format!("read: {e}"))?;
            if got != LEN {
                return Err(format!("read {got} of {LEN} bytes from a pipe"));
            }
            Numbered::decode(&bytes)?
        }
        other => return Err(format!("received a {other:?}, not a memfd or a pipe")),
    };
    let expected = match file_type {
        FileType::Fifo => Kind::Pipe,
        _ => Kind::Memfd,
    };
    if n.kind != expected {
        return Err(format!(
            "descriptor #{} says it is a {:?} but is a {file_type:?}",
            n.seq, n.kind
        ));
    }
    Ok(n)
}

/// Retries `f` while it fails with `EINTR`.
pub fn retry_intr<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}
