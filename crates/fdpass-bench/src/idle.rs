//! The footprint of idle passers, measured in a fresh process each
//! (`--idle KIND COUNT`) so that earlier work does not blur the figures.

use std::os::fd::OwnedFd;
use std::process::Command;

use fdpass_core::{Config, Reservation};

use crate::{alloc, BoxError};

/// The kinds of idle passer measured.
pub const KINDS: [&str; 5] = ["core-peek", "core-sentinel", "mio", "tokio", "smol"];

/// What an idle-passer process reports.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub kind: String,
    pub passers: usize,
    /// Descriptors opened per passer, the socket included.
    pub fds_per_passer: f64,
    /// `held_descriptors()` summed over the passers (core and mio only).
    pub held: Option<usize>,
    /// Heap bytes allocated per passer (its struct included).
    pub heap_per_passer: f64,
    /// Resident memory added by all the passers, in bytes.
    pub rss_total: i64,
}

impl Footprint {
    pub fn rss_per_passer(&self) -> f64 {
        self.rss_total as f64 / self.passers as f64
    }
}

/// How many passers of `kind` fit under a descriptor limit of `limit`.
pub fn count_for(kind: &str, wanted: usize, limit: usize) -> usize {
    let per_passer = if kind == "core-sentinel" {
        Config::default().max_fds_per_message + 2
    } else {
        1
    };
    let fit = limit.saturating_sub(4096) / per_passer;
    // Passers come in connected pairs.
    wanted.min(fit) & !1
}

/// Runs `--idle KIND COUNT` in a new process and reads its report.
pub fn measure(kind: &str, count: usize) -> Result<Footprint, BoxError> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--idle", kind, &count.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "idle measurement {kind} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8(output.stdout)?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [fds0, fds1, heap0, heap1, rss0, rss1, held] = fields[..] else {
        return Err(format!("idle measurement {kind} said {text:?}").into());
    };
    let fds = fds1.parse::<i64>()? - fds0.parse::<i64>()?;
    Ok(Footprint {
        kind: kind.to_string(),
        passers: count,
        fds_per_passer: fds as f64 / count as f64,
        held: held.parse().ok(),
        heap_per_passer: (heap1.parse::<i64>()? - heap0.parse::<i64>()?) as f64 / count as f64,
        rss_total: rss1.parse::<i64>()? - rss0.parse::<i64>()?,
    })
}

/// Open descriptors of this process.
fn open_descriptors() -> Result<i64, BoxError> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as i64)
}

/// Resident set size of this process, in bytes.
fn resident_bytes() -> Result<i64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS line")?;
    let kib: i64 = line
        .split_whitespace()
        .nth(1)
        .ok_or("bad VmRSS line")?
        .parse()?;
    Ok(kib * 1024)
}

/// Creates `count` passers of `kind` (in connected pairs) and reports what
/// they cost. The first pair is made before measuring, so that one-time
/// set-up (runtimes, reactors) is not counted.
pub fn serve(args: &[String]) -> Result<(), BoxError> {
    let [kind, count] = args else {
        return Err("usage: --idle KIND COUNT".into());
    };
    let count: usize = count.parse()?;
    crate::raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _context = runtime.enter();
    let peek = Config::default().with_reservation(Reservation::Peek);
    let sentinel = Config::default().with_reservation(Reservation::Sentinel);
    let line = match kind.as_str() {
        "core-peek" => footprint(
            count,
            |s| fdpass_core::Passer::new(s, peek),
            |p| Some(p.held_descriptors()),
        )?,
        "core-sentinel" => footprint(
            count,
            |s| fdpass_core::Passer::new(s, sentinel),
            |p| Some(p.held_descriptors()),
        )?,
        "mio" => footprint(
            count,
            |s| fdpass_mio::Passer::with_config(s, peek),
            |p| Some(p.core().held_descriptors()),
        )?,
        "tokio" => footprint(
            count,
            |s| fdpass_tokio::Passer::with_config(s, peek),
            |_| None,
        )?,
        "smol" => footprint(
            count,
            |s| fdpass_smol::Passer::with_config(s, peek),
            |_| None,
        )?,
        _ => return Err(format!("unknown kind {kind:?}").into()),
    };
    println!("{line}");
    Ok(())
}

/// Measures `count` passers made by `make`; the passers live in one vector
/// of their own type, so their structs count at their real size.
fn footprint<P>(
    count: usize,
    make: impl Fn(OwnedFd) -> Result<P, fdpass_core::Error>,
    held: impl Fn(&P) -> Option<usize>,
) -> Result<String, BoxError> {
    let (a, b) = fdpass_core::socket::pair()?;
    let warm = [make(a)?, make(b)?];

    let fds0 = open_descriptors()?;
    let heap0 = alloc::live_bytes();
    let rss0 = resident_bytes()?;
    let mut passers = Vec::with_capacity(count);
    for _ in 0..count / 2 {
        let (a, b) = fdpass_core::socket::pair()?;
        passers.push(make(a)?);
        passers.push(make(b)?);
    }
    let heap1 = alloc::live_bytes();
    let rss1 = resident_bytes()?;
    let fds1 = open_descriptors()?;
    let held: Option<usize> = passers.iter().map(held).sum();
    let held = held.map_or_else(|| "-".to_string(), |h| h.to_string());
    drop(passers);
    drop(warm);
    Ok(format!(
        "{fds0} {fds1} {heap0} {heap1} {rss0} {rss1} {held}"
    ))
}
