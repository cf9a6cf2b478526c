//! Counting this process's open descriptors (`/proc/self/fd` entries).

use std::io;

use rustix::fs::{Dir, Mode, OFlags};

/// Counts the entries of `/proc/self/fd` through a directory descriptor
/// opened once, so that counting needs no free slot: it works while the
/// descriptor table is full. The counter's own descriptor is one of the
/// entries it counts, the same in every count.
///
/// ```
/// let mut counter = fdpass_soak::fdcount::FdCounter::new()?;
/// let before = counter.count()?;
/// let (r, w) = rustix::pipe::pipe()?;
/// assert_eq!(counter.count()?, before + 2);
/// drop((r, w));
/// assert_eq!(counter.count()?, before);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FdCounter {
    dir: Dir,
}

impl FdCounter {
    /// Opens `/proc/self/fd` (Linux).
    pub fn new() -> io::Result<FdCounter> {
        let fd = rustix::fs::open(
            "/proc/self/fd",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(FdCounter { dir: Dir::new(fd)? })
    }

    /// How many descriptors are open in this process right now, once the
    /// descriptors fdpass handed to its background closer are closed.
    pub fn count(&mut self) -> io::Result<usize> {
        if !fdpass_core::disposal::flush(std::time::Duration::from_secs(30)) {
            return Err(io::Error::other("pending disposals did not finish"));
        }
        self.dir.rewind();
        let mut n = 0;
        while let Some(entry) = self.dir.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                n += 1;
            }
        }
        Ok(n)
    }
}
