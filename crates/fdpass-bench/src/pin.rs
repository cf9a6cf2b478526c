//! Every thread of this process on one processor, for the round trips that
//! leave out how long an idle processor takes to wake up.
//!
//! Affinity belongs to threads, and runtimes start threads of their own, so
//! every thread listed in `/proc/self/task` is pinned, and put back when the
//! guard is dropped.

use std::io;

use rustix::process::Pid;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The processor both processes of a pinned round trip run on: the lowest
/// one this process may use.
pub fn first_cpu() -> io::Result<usize> {
    let allowed = sched_getaffinity(None)?;
    (0..CpuSet::MAX_CPU)
        .find(|&cpu| allowed.is_set(cpu))
        .ok_or_else(|| io::Error::other("no processor is allowed"))
}

/// While alive, every thread of the process runs on one processor.
pub struct Pinned {
    saved: CpuSet,
}

impl Pinned {
    pub fn to(cpu: usize) -> io::Result<Pinned> {
        let saved = sched_getaffinity(None)?;
        let mut one = CpuSet::new();
        one.set(cpu);
        set_all_threads(&one)?;
        Ok(Pinned { saved })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Putting back the set the threads had cannot fail for threads that
        // exist; should it, later figures would come from one processor, so
        // say so rather than go on silently.
        if let Err(e) = set_all_threads(&self.saved) {
            eprintln!("fdpass-bench: could not unpin the threads: {e}");
        }
    }
}

fn set_all_threads(set: &CpuSet) -> io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let name = entry?.file_name();
        let Some(tid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        match sched_setaffinity(Pid::from_raw(tid), set) {
            // A thread that ended meanwhile needs no pinning.
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
