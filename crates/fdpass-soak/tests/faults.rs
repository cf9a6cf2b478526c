//! Fault tests with real processes.
//!
//! Every scenario that changes process-wide state (descriptor limits, signal
//! handlers, user ids, processes killed) runs in a child process: this test
//! binary re-run for that one test with a role in the environment. The child
//! prints `REPORT key=value ...` lines; the parent asserts on them and on the
//! child's exit status. Nothing waits by sleeping: every wait is for an
//! event (a pipe, a process exit, a passer event), bounded by a generous
//! deadline that only a hang would reach. (The EINTR storm's killer pauses
//! between signals: that is the injected schedule, not a wait.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdpass_core::sys::Sys;
use fdpass_core::{Config, Event, Passer, Reservation, Want};
use fdpass_soak::drive;
use fdpass_soak::fdcount::FdCounter;
use fdpass_soak::payload::{self, Kind, Numbered};
use fdpass_soak::rng::Rng;
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Which part a re-run of this binary plays.
const ROLE: &str = "FDPASS_FAULTS_ROLE";
/// Settings handed to a child role.
const ARGS: &str = "FDPASS_FAULTS_ARGS";

/// The longest anything may take; reaching it is a failure, nothing waits
/// for it to pass.
const OVERALL: Duration = Duration::from_secs(120);

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

fn role_args() -> Vec<String> {
    std::env::var(ARGS)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// This test binary, run for test `name` alone, in role `role`.
fn self_command(name: &str, role: &str, args: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(ARGS, args)
        .stdin(Stdio::null());
    command
}

/// Runs a child role to the end and returns its `REPORT` fields, after
/// asserting that it succeeded.
fn run_role(name: &str, role: &str, args: &str) -> HashMap<String, String> {
    let output = self_command(name, role, args)
        .stderr(Stdio::inherit())
        .output()
        .expect("spawning the child role");
    check_output(role, &output)
}

fn check_output(role: &str, output: &Output) -> HashMap<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the {role} child failed ({}); its output:\n{stdout}",
        output.status
    );
    let mut fields = HashMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("REPORT ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("key=value");
                fields.insert(k.to_string(), v.to_string());
            }
        }
    }
    assert!(
        !fields.is_empty(),
        "the {role} child reported nothing:\n{stdout}"
    );
    fields
}

fn field<T: std::str::FromStr>(fields: &HashMap<String, String>, key: &str) -> T {
    fields
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} unparsable in {fields:?}"))
}

fn numbered(seq: u64) -> OwnedFd {
    payload::make(Numbered {
        seq,
        last: false,
        kind: Kind::for_seq(0, seq),
    })
    .expect("making a numbered descriptor")
}

fn soft_limit() -> u64 {
    getrlimit(Resource::Nofile).current.expect("a finite limit")
}

fn set_soft_limit(soft: u64) {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: hard,
        },
    )
    .expect("setrlimit");
}

/// Duplicates `fd` until the table is full.
fn fill_table(fd: &OwnedFd) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    loop {
        match rustix::io::fcntl_dupfd_cloexec(fd, 0) {
            Ok(dup) => fds.push(dup),
            Err(Errno::MFILE) => return fds,
            Err(e) => panic!("dup: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The sentinel reservation under a limit lowered below its slots.

/// The sentinel's reserved slots keep room for what arrives only while their
/// numbers are below `RLIMIT_NOFILE`: the kernel installs a received
/// descriptor at the lowest free number below the limit. Here the slot sits
/// above a lowered limit and the table below it is full. The passer must
/// wait for room (and then deliver), not read a message the kernel can only
/// truncate: with the sentinel a truncated message is consumed and its
/// descriptors are gone.
#[test]
fn sentinel_slots_above_a_lowered_limit() {
    if role().as_deref() == Some("sentinel-limit") {
        return sentinel_limit_child();
    }
    if role().is_some() {
        return;
    }
    let report = run_role("sentinel_slots_above_a_lowered_limit", "sentinel-limit", "");
    assert_eq!(report["delivered"], "1");
    println!("sentinel slots above a lowered limit: {report:?}");
}

fn sentinel_limit_child() {
    let mut counter = FdCounter::new().unwrap();
    let placeholder = numbered(u64::MAX >> 1);
    let baseline = counter.count().unwrap();
    let normal = soft_limit();
    // Push the next free numbers up, so the passers' descriptors land high.
    let low: Vec<OwnedFd> = (0..200)
        .map(|_| rustix::io::fcntl_dupfd_cloexec(&placeholder, 0).unwrap())
        .collect();
    let config = Config::default()
        .with_reservation(Reservation::Sentinel)
        .with_max_fds_per_message(1);
    let (mut tx, mut rx) = Passer::pair(config).unwrap();
    tx.push_send(numbered(7)).unwrap();
    rx.push_recv().unwrap();
    drop(low);
    // A limit below the sentinel's slot, with every number under it taken.
    set_soft_limit(counter.count().unwrap() as u64);
    let fill = fill_table(&placeholder);
    assert!(!fill.is_empty(), "nothing to fill: the test proves nothing");

    let deadline = Instant::now() + OVERALL;
    let mut events = Vec::new();
    let mut fill = Some(fill);
    let mut waited = false;
    let mut delivered = 0;
    while delivered == 0 {
        assert!(Instant::now() < deadline, "no delivery: {rx:?}");
        let _ = drive::step(&mut tx, Some(Instant::now()), &mut events).unwrap();
        events.clear();
        let round = drive::step(
            &mut rx,
            Some(Instant::now() + Duration::from_millis(100)),
            &mut events,
        )
        .unwrap();
        assert!(!round.stuck, "the receiver has nothing to wait for: {rx:?}");
        for event in events.drain(..) {
            match event {
                Event::Received(_, fd) => {
                    assert!(fill.is_none(), "received while the table was full");
                    assert_eq!(payload::read(&fd).unwrap().seq, 7);
                    delivered += 1;
                }
                other => panic!("unexpected {other:?} (the descriptor was lost)"),
            }
        }
        // Once the receiver waits for room, give it room.
        if fill.is_some() && rx.interest().read == Want::Idle && rx.poll_timeout().is_some() {
            waited = true;
            fill = None;
            set_soft_limit(normal);
        }
    }
    assert!(waited, "the receiver never waited for room");
    drop((tx, rx));
    assert_eq!(counter.count().unwrap(), baseline, "leaked descriptors");
    println!("REPORT delivered={delivered} waited={waited}");
}

// ---------------------------------------------------------------------------
// Shared by the scenarios below.

/// Sends `n` numbered descriptors and receives `n` from the peer, checking
/// their order, until every send is acknowledged and every receive arrived.
/// Counts `poll` calls interrupted by signals in `interrupted`.
fn exchange<S: Sys + std::fmt::Debug>(passer: &mut Passer<S>, n: u64, interrupted: &mut u64) {
    let deadline = Instant::now() + OVERALL;
    let (mut pushed, mut acked, mut asked, mut received) = (0u64, 0u64, 0u64, 0u64);
    let mut events = Vec::new();
    while acked < n || received < n {
        assert!(
            Instant::now() < deadline,
            "exchange not done: sent {acked}/{n}, received {received}/{n}: {passer:?}"
        );
        while pushed < n && passer.queued_sends() < 64 {
            passer.push_send(numbered(pushed)).expect("push_send");
            pushed += 1;
        }
        while asked < n && passer.outstanding_recvs() < 128 {
            passer.push_recv().expect("push_recv");
            asked += 1;
        }
        let round = drive::step(passer, Some(deadline), &mut events).expect("poll");
        if round.interrupted {
            *interrupted += 1;
        }
        for event in events.drain(..) {
            match event {
                Event::Sent(token) => acked = token.0 + 1,
                Event::Received(_, fd) => {
                    let got = payload::read(&fd).expect("a numbered descriptor");
                    assert_eq!(got.seq, received, "lost, duplicated or out of order");
                    received += 1;
                }
                other => panic!("unexpected {other:?} after {received} received, {acked} sent"),
            }
        }
    }
}

fn config(reservation: &str, max_fds: usize) -> Config {
    let reservation = match reservation {
        "peek" => Reservation::Peek,
        "sentinel" => Reservation::Sentinel,
        other => panic!("unknown reservation {other}"),
    };
    Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds)
}

// ---------------------------------------------------------------------------
// The peer killed with SIGKILL mid-stream.

/// Trials of the SIGKILL scenario.
const KILL_TRIALS: u64 = 100;

/// The survivor must report `Closed` or `Failed` this soon after the kill.
const DETECTION_LIMIT: Duration = Duration::from_secs(5);

/// A survivor process runs 100 trials. In each, it starts a victim that
/// sends descriptors to it without end (in half the trials the survivor
/// sends back), and kills the victim
/// with SIGKILL after a random number of deliveries (seeded; set
/// `FDPASS_FAULTS_SEED` to replay another schedule). The survivor must
/// report `Closed` or `Failed` within 5 s, must have received everything in
/// order until then, and must be back to its baseline descriptor count once
/// the passer is dropped and the victim reaped.
#[test]
fn peer_killed_mid_stream() {
    match role().as_deref() {
        Some("survivor") => return survivor(),
        Some("victim") => return victim(),
        Some(_) => return,
        None => {}
    }
    let seed: u64 = std::env::var("FDPASS_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_240_601);
    let report = run_role(
        "peer_killed_mid_stream",
        "survivor",
        &format!("{seed} {KILL_TRIALS}"),
    );
    assert_eq!(field::<u64>(&report, "trials"), KILL_TRIALS);
    let worst: u64 = field(&report, "worst_us");
    assert!(worst < DETECTION_LIMIT.as_micros() as u64);
    println!(
        "peer killed mid-stream (seed {seed}): {KILL_TRIALS} trials, worst detection {:.1} ms, \
         mean {:.1} ms, {} Closed + {} Failed first, kills after 0 to {} deliveries",
        worst as f64 / 1000.0,
        field::<f64>(&report, "mean_us") / 1000.0,
        report["closed"],
        report["failed"],
        report["max_kill_after"],
    );
}

fn survivor() {
    let args = role_args();
    let seed: u64 = args[0].parse().unwrap();
    let trials: u64 = args[1].parse().unwrap();
    let mut counter = FdCounter::new().unwrap();
    let (mut worst, mut total) = (Duration::ZERO, Duration::ZERO);
    let (mut closed, mut failed, mut max_kill_after) = (0, 0, 0);
    for trial in 0..trials {
        let mut rng = Rng::derive(seed, trial);
        let reservation = ["peek", "sentinel"][rng.below(2) as usize];
        let max_fds = [1usize, 4, 64][rng.below(3) as usize];
        let kill_after = rng.below(1000);
        // Receive-only trials leave the victim nothing unread when it dies
        // (end of stream); sending trials usually see a reset.
        let survivor_sends = rng.below(2) == 0;
        max_kill_after = max_kill_after.max(kill_after);
        let context = format!(
            "trial {trial} ({reservation}, max_fds {max_fds}, kill after {kill_after}, survivor sends: {survivor_sends})"
        );

        let baseline = counter.count().unwrap();
        let handoff = fdpass_core::child::Handoff::new().unwrap();
        let mut command = self_command(
            "peer_killed_mid_stream",
            "victim",
            &format!("{reservation} {max_fds}"),
        );
        command.stdout(Stdio::null());
        handoff.configure(&mut command);
        let mut victim = command.spawn().unwrap();
        let mut passer = Passer::new(handoff.finish(), config(reservation, max_fds)).unwrap();
        let (detection, was_closed) = outlive(
            &mut passer,
            &mut victim,
            kill_after,
            survivor_sends,
            &context,
        );
        drop(passer);
        let status = victim.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "{context}: the victim was not killed: {status}"
        );
        assert_eq!(
            counter.count().unwrap(),
            baseline,
            "{context}: leaked descriptors"
        );
        worst = worst.max(detection);
        total += detection;
        if was_closed {
            closed += 1;
        } else {
            failed += 1;
        }
    }
    println!(
        "REPORT trials={trials} worst_us={} mean_us={} closed={closed} failed={failed} max_kill_after={max_kill_after}",
        worst.as_micros(),
        total.as_micros() / u128::from(trials.max(1)),
    );
}

/// Passes descriptors both ways with the victim, kills it after
/// `kill_after` deliveries, and returns how long the passer took to report
/// the end, and whether that was `Closed` (else `Failed`).
fn outlive(
    passer: &mut Passer,
    victim: &mut std::process::Child,
    kill_after: u64,
    sends: bool,
    context: &str,
) -> (Duration, bool) {
    let start = Instant::now();
    let (mut pushed, mut received) = (0u64, 0u64);
    let mut killed_at: Option<Instant> = None;
    let mut events = Vec::new();
    loop {
        // Sending stops once it failed (`SendFailed`); receiving goes on.
        while sends && passer.send_usable().is_ok() && passer.queued_sends() < 16 {
            passer.push_send(numbered(pushed)).expect("push_send");
            pushed += 1;
        }
        while passer.outstanding_recvs() < 64 {
            passer.push_recv().expect("push_recv");
        }
        if killed_at.is_none() && received >= kill_after {
            victim.kill().expect("SIGKILL");
            killed_at = Some(Instant::now());
        }
        let limit = match killed_at {
            Some(at) => at + DETECTION_LIMIT,
            None => start + OVERALL,
        };
        assert!(
            Instant::now() < limit,
            "{context}: no Closed or Failed {:?} after the kill: {passer:?}",
            killed_at.map(|at| at.elapsed())
        );
        let round = drive::step(passer, Some(limit), &mut events).expect("poll");
        assert!(!round.stuck, "{context}: nothing to wait for: {passer:?}");
        for event in events.drain(..) {
            match event {
                Event::Received(_, fd) => {
                    let got = payload::read(&fd).expect("a numbered descriptor");
                    assert_eq!(
                        got.seq, received,
                        "{context}: lost, duplicated or out of order"
                    );
                    received += 1;
                }
                Event::Sent(_) | Event::SendFailed(_) => {}
                end @ (Event::Closed | Event::Failed(_)) => {
                    let at = killed_at.unwrap_or_else(|| {
                        panic!("{context}: {end:?} before the victim was killed")
                    });
                    return (at.elapsed(), matches!(end, Event::Closed));
                }
                other => panic!("{context}: unexpected {other:?}"),
            }
        }
    }
}

/// Passes descriptors both ways until the survivor kills it (or goes away).
fn victim() {
    let args = role_args();
    let max_fds: usize = args[1].parse().unwrap();
    let socket = fdpass_core::child::adopt_inherited().unwrap();
    let mut passer = Passer::new(socket, config(&args[0], max_fds)).unwrap();
    let (mut pushed, mut received) = (0u64, 0u64);
    let mut events = Vec::new();
    loop {
        while passer.queued_sends() < 2 * max_fds.max(8) {
            if passer.push_send(numbered(pushed)).is_err() {
                return;
            }
            pushed += 1;
        }
        while passer.outstanding_recvs() < 64 {
            if passer.push_recv().is_err() {
                return;
            }
        }
        drive::step(
            &mut passer,
            Some(Instant::now() + Duration::from_secs(1)),
            &mut events,
        )
        .expect("poll");
        for event in events.drain(..) {
            match event {
                Event::Received(_, fd) => {
                    let got = payload::read(&fd).expect("a numbered descriptor");
                    assert_eq!(got.seq, received, "the victim saw disorder");
                    received += 1;
                }
                Event::Sent(_) => {}
                _ => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ETOOMANYREFS for real.

/// The unprivileged user the sender runs as.
const NOBODY: u32 = 65534;
/// The sender's descriptor limit, which is also its user's in-flight limit.
const SENDER_LIMIT: u64 = 24;
/// Descriptors the sender passes.
const REFS_COUNT: u64 = 300;
/// Retries the kernel must refuse before the receiver starts reading.
const REFUSED_RETRIES: u32 = 4;

/// The kernel limits the descriptors a user has in flight (sent, not yet
/// received) to that user's `RLIMIT_NOFILE`, unless it has
/// `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`; past it `sendmsg` fails with
/// `ETOOMANYREFS`. A sender running as an unprivileged user with a limit of
/// 24 passes 300 descriptors to this process, which reads nothing until the
/// sender reports that it is held back: a send retry deadline while its
/// queue is not empty, renewed four times (four retries refused), and
/// confirmed as `ETOOMANYREFS` by a probe on a separate socket. Then
/// everything must arrive, in order: the sender kept its queue throughout.
#[test]
fn etoomanyrefs_holds_the_queue_until_the_receiver_reads() {
    if role().as_deref() == Some("unprivileged-sender") {
        return unprivileged_sender();
    }
    if role().is_some() {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "etoomanyrefs_holds_the_queue_until_the_receiver_reads needs root (to start the sender \
             as an unprivileged user with its capabilities dropped); skipped"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // A copy of this binary the unprivileged user can execute, wherever
    // the build directory is.
    let dir = std::env::temp_dir().join(format!("fdpass-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("faults");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();

    let max_fds = 1;
    let handoff = fdpass_core::child::Handoff::new().unwrap();
    let mut command = Command::new(&exe);
    command
        .args([
            "etoomanyrefs_holds_the_queue_until_the_receiver_reads",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, "unprivileged-sender")
        .env(ARGS, format!("{max_fds}"))
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    handoff.configure(&mut command);
    let mut sender = command.spawn().expect("starting the unprivileged sender");
    let socket = handoff.finish();
    let mut lines = BufReader::new(sender.stdout.take().unwrap()).lines();

    // Read nothing until the sender says it is held back. Its report comes
    // over its stdout; EOF first means it ended without one.
    let mut transcript = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let held = line.starts_with("BACKPRESSURE");
                transcript.push(line);
                if held {
                    break;
                }
            }
            Some(Err(e)) => panic!("reading the sender's report: {e}"),
            None => {
                let status = sender.wait().unwrap();
                std::fs::remove_dir_all(&dir).ok();
                panic!(
                    "the sender ended ({status}) without reporting back-pressure: {transcript:#?}"
                );
            }
        }
    }
    let reading_from = Instant::now();

    let mut passer =
        Passer::new(socket, Config::default().with_max_fds_per_message(max_fds)).unwrap();
    let deadline = Instant::now() + OVERALL;
    let (mut asked, mut received) = (0u64, 0u64);
    let mut events = Vec::new();
    while received < REFS_COUNT {
        assert!(
            Instant::now() < deadline,
            "received only {received}: {passer:?}"
        );
        while asked < REFS_COUNT && passer.outstanding_recvs() < 64 {
            passer.push_recv().unwrap();
            asked += 1;
        }
        drive::step(&mut passer, Some(deadline), &mut events).unwrap();
        for event in events.drain(..) {
            match event {
                Event::Received(_, fd) => {
                    let got = payload::read(&fd).expect("a numbered descriptor");
                    assert_eq!(got.seq, received, "lost, duplicated or out of order");
                    received += 1;
                }
                other => panic!("unexpected {other:?} after {received} received"),
            }
        }
    }
    let read_all = reading_from.elapsed();
    transcript.extend(lines.map(|l| l.unwrap()));
    let status = sender.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        status.success(),
        "the sender failed ({status}): {transcript:#?}"
    );
    let output = Output {
        status,
        stdout: transcript.join("\n").into_bytes(),
        stderr: Vec::new(),
    };
    let report = check_output("unprivileged-sender", &output);
    assert_eq!(report["confirmed"], "ETOOMANYREFS");
    assert_eq!(field::<u64>(&report, "sent"), REFS_COUNT);
    assert!(field::<u64>(&report, "backoffs") >= 1);
    assert!(field::<u64>(&report, "queued_at_backpressure") >= 1);
    assert!(field::<u32>(&report, "refused_retries") >= REFUSED_RETRIES);
    println!(
        "ETOOMANYREFS: uid {NOBODY}, RLIMIT_NOFILE {SENDER_LIMIT}: held back after {} in flight with {} queued; \
         first hold {:.1} ms ({} retries refused before this side read); {} back-off episodes, \
         {:.1} ms held back in all; all {REFS_COUNT} arrived in order, {:.1} ms after reading began",
        report["in_flight_at_backpressure"],
        report["queued_at_backpressure"],
        field::<f64>(&report, "first_hold_us") / 1000.0,
        report["refused_retries"],
        report["backoffs"],
        field::<f64>(&report, "held_us") / 1000.0,
        read_all.as_secs_f64() * 1000.0,
    );
}

/// Runs as the unprivileged user: lowers its own limit, sends until held
/// back, confirms the cause, reports, then sends the rest.
fn unprivileged_sender() {
    assert_ne!(
        rustix::process::geteuid().as_raw(),
        0,
        "the sender must not be root"
    );
    let max_fds: usize = role_args()[0].parse().unwrap();
    set_soft_limit(SENDER_LIMIT);
    let socket = fdpass_core::child::adopt_inherited().unwrap();
    let mut passer =
        Passer::new(socket, Config::default().with_max_fds_per_message(max_fds)).unwrap();
    let deadline = Instant::now() + OVERALL;
    let (mut pushed, mut acked) = (0u64, 0u64);
    let mut events = Vec::new();
    let mut reported = false;
    let (mut backoffs, mut held, mut longest) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut held_since: Option<Instant> = None;
    let mut first_hold = None;
    let (mut refused_retries, mut last_deadline) = (0, None);
    while acked < REFS_COUNT {
        assert!(Instant::now() < deadline, "sent only {acked}: {passer:?}");
        while pushed < REFS_COUNT && passer.queued_sends() < 4 {
            passer.push_send(numbered(pushed)).unwrap();
            pushed += 1;
        }
        drive::step(&mut passer, Some(deadline), &mut events).unwrap();
        for event in events.drain(..) {
            match event {
                Event::Sent(token) => acked = token.0 + 1,
                other => panic!("unexpected {other:?} after {acked} sent"),
            }
        }
        let interest = passer.interest();
        let waiting = passer.queued_sends() > 0
            && interest.write == Want::Idle
            && passer.poll_timeout().is_some();
        match (waiting, held_since) {
            (true, None) => {
                backoffs += 1;
                held_since = Some(Instant::now());
            }
            (false, Some(since)) => {
                held += since.elapsed();
                longest = longest.max(since.elapsed());
                if first_hold.is_none() {
                    first_hold = Some(since.elapsed());
                }
                held_since = None;
            }
            _ => {}
        }
        if !reported {
            // Each new deadline in the episode is a retry the kernel refused.
            let deadline = passer.poll_timeout().filter(|_| waiting);
            if deadline.is_none() {
                refused_retries = 0;
            } else if deadline != last_deadline && last_deadline.is_some() {
                refused_retries += 1;
            }
            last_deadline = deadline;
        }
        if !reported && refused_retries >= REFUSED_RETRIES {
            reported = true;
            let queued = passer.queued_sends();
            let confirmed = probe_in_flight_limit();
            println!(
                "REPORT confirmed={confirmed} in_flight_at_backpressure={acked} queued_at_backpressure={queued} refused_retries={refused_retries}"
            );
            println!("BACKPRESSURE");
            use std::io::Write;
            std::io::stdout().flush().unwrap();
        }
        if !reported && interest.write == Want::WhenReady {
            panic!("the socket buffer filled after {acked} descriptors before any ETOOMANYREFS");
        }
    }
    assert!(reported, "all {REFS_COUNT} went out without back-pressure");
    println!(
        "REPORT sent={acked} backoffs={backoffs} held_us={} longest_hold_us={} first_hold_us={}",
        held.as_micros(),
        longest.as_micros(),
        first_hold.unwrap_or_default().as_micros()
    );
}

/// Sends one descriptor over a fresh socketpair: while the user's in-flight
/// count is over its limit this fails with `ETOOMANYREFS`. Returns what the
/// kernel said.
fn probe_in_flight_limit() -> String {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let (a, _b) = fdpass_core::socket::pair().expect("a probe socketpair");
    let fd = numbered(u64::MAX >> 1);
    let fds = [std::os::fd::AsFd::as_fd(&fd)];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    match rustix::net::sendmsg(
        &a,
        &[std::io::IoSlice::new(&[0])],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    ) {
        Err(Errno::TOOMANYREFS) => "ETOOMANYREFS".into(),
        Err(e) => format!("{e:?}").replace(' ', "_"),
        Ok(_) => "accepted".into(),
    }
}

// ---------------------------------------------------------------------------
// EINTR storms.

/// Descriptors passed each way during the storm (20,000 through the passer).
const STORM_EACH_WAY: u64 = 10_000;

/// The killer's pause between two signals (the injected schedule, not a
/// wait for anything): tens of thousands of signals a second at most.
const STORM_PACE: Duration = Duration::from_micros(20);

/// SIGUSR1 handlers run, in any thread.
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// SIGUSR1 handlers run on the thread that drives the passer.
static SIGNALS_ON_DRIVER: AtomicU64 = AtomicU64::new(0);
/// The driving thread's id.
static DRIVER_TID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_usr1(_signal: libc::c_int) {
    // Only async-signal-safe work: atomics and a raw gettid.
    SIGNALS.fetch_add(1, Ordering::Relaxed);
    if rustix::thread::gettid().as_raw_nonzero().get() == DRIVER_TID.load(Ordering::Relaxed) {
        SIGNALS_ON_DRIVER.fetch_add(1, Ordering::Relaxed);
    }
}

/// Installs a no-op SIGUSR1 handler *without* `SA_RESTART`, so that every
/// system call the signal interrupts fails with `EINTR` instead of being
/// restarted by the kernel.
///
/// rustix installs no handlers, and signal-hook (through
/// signal-hook-registry) always sets `SA_RESTART`, which would hide most of
/// what this test is about; so this is the one place that calls `sigaction`
/// directly.
fn install_non_restarting_handler() {
    // SAFETY: `action` is fully initialised (zeroed, then the handler, an
    // empty mask and no flags); the handler only touches atomics and makes
    // one raw system call, both async-signal-safe; the old action is not
    // requested.
    let result = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut())
    };
    assert_eq!(result, 0, "sigaction: {}", std::io::Error::last_os_error());
}

/// Passer system calls that failed with `EINTR`.
static SYS_EINTR: AtomicU64 = AtomicU64::new(0);

/// The real system calls, counting those that failed with `EINTR`.
#[derive(Debug, Default)]
struct CountingSys {
    inner: fdpass_core::sys::SystemCalls,
}

impl CountingSys {
    fn count<T>(&mut self, result: Result<T, Errno>) -> Result<T, Errno> {
        if result.as_ref().err() == Some(&Errno::INTR) {
            SYS_EINTR.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl Sys for CountingSys {
    fn sendmsg(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        let result = self.inner.sendmsg(socket, bytes, fds);
        self.count(result)
    }

    fn recvmsg(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: fdpass_core::sys::RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<fdpass_core::sys::Received, Errno> {
        let result = self.inner.recvmsg(socket, buf, max_fds, mode, fds);
        self.count(result)
    }

    fn dup(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        let result = self.inner.dup(fd);
        self.count(result)
    }

    fn close(&mut self, fd: OwnedFd) {
        self.inner.close(fd);
    }

    fn set_nonblocking(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), Errno> {
        let result = self.inner.set_nonblocking(fd);
        self.count(result)
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        let result = self.inner.pipe();
        self.count(result)
    }

    fn shutdown(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), Errno> {
        let result = self.inner.shutdown(fd);
        self.count(result)
    }

    fn nofile_limit(&mut self) -> Option<u64> {
        self.inner.nofile_limit()
    }

    fn peek_bytes(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let result = self.inner.peek_bytes(socket, buf)?;
        Some(self.count(result))
    }
}

/// A process installs a SIGUSR1 handler without `SA_RESTART`; another
/// thread sends it SIGUSR1 with `kill` in a tight loop while the process
/// passes 20,000 descriptors (10,000 each way, with a peer process) through
/// one passer, for each reservation strategy. Everything must arrive in
/// order, nothing may leak, and the signals must really have landed on the
/// driving thread (its `poll` calls interrupted).
#[test]
fn eintr_storm_changes_nothing() {
    match role().as_deref() {
        Some("storm") => return storm(),
        Some("storm-peer") => return storm_peer(),
        Some(_) => return,
        None => {}
    }
    let mut polls_interrupted = 0;
    for (reservation, max_fds) in [("peek", 64), ("sentinel", 1)] {
        let report = run_role(
            "eintr_storm_changes_nothing",
            "storm",
            &format!("{reservation} {max_fds}"),
        );
        let on_driver: u64 = field(&report, "signals_on_driver");
        let interrupted: u64 = field(&report, "poll_eintr");
        polls_interrupted += interrupted;
        assert!(
            on_driver >= 100,
            "hardly any signal reached the driving thread: {report:?}"
        );
        println!(
            "EINTR storm ({reservation}, max_fds {max_fds}): {} descriptors in {:.2} s; {} kill calls, \
             {} signals handled ({} on the driving thread, {:.0}/s); {} polls and {} passer system calls \
             returned EINTR",
            2 * STORM_EACH_WAY,
            field::<f64>(&report, "elapsed_us") / 1e6,
            report["kills"],
            report["signals"],
            on_driver,
            on_driver as f64 / (field::<f64>(&report, "elapsed_us") / 1e6),
            interrupted,
            report["sys_eintr"],
        );
    }
    // Whether a signal finds the thread blocked in poll depends on timing,
    // so this asks for one interrupted poll over both transfers (thousands
    // of signals each make that all but certain).
    assert!(polls_interrupted > 0, "no poll was ever interrupted");
}

fn storm() {
    let args = role_args();
    let max_fds: usize = args[1].parse().unwrap();
    install_non_restarting_handler();
    DRIVER_TID.store(
        rustix::thread::gettid().as_raw_nonzero().get(),
        Ordering::SeqCst,
    );
    let mut counter = FdCounter::new().unwrap();
    let baseline = counter.count().unwrap();

    let handoff = fdpass_core::child::Handoff::new().unwrap();
    let mut command = self_command(
        "eintr_storm_changes_nothing",
        "storm-peer",
        &format!("{} {max_fds}", args[0]),
    );
    command.stdout(Stdio::null());
    handoff.configure(&mut command);
    let mut peer = command.spawn().unwrap();
    let mut passer = Passer::with_sys(
        CountingSys::default(),
        handoff.finish(),
        config(&args[0], max_fds),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let killer = {
        let (stop, kills) = (Arc::clone(&stop), Arc::clone(&kills));
        // `kill` with the driving thread's id sends a signal to the whole
        // process (any thread may take it) but offers it to that thread
        // first; with the process id, the kernel would offer it to the test
        // harness's main thread, which only waits.
        let driver =
            rustix::process::Pid::from_raw(DRIVER_TID.load(Ordering::SeqCst)).expect("a thread id");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                rustix::process::kill_process(driver, rustix::process::Signal::USR1).unwrap();
                kills.fetch_add(1, Ordering::Relaxed);
                // The storm's pace: a signal still pending absorbs further
                // kills, and a killer spinning flat out would only take the
                // core the driving thread needs to take them.
                std::thread::sleep(STORM_PACE);
            }
        })
    };
    // The transfer starts once the storm reaches this thread.
    let deadline = Instant::now() + OVERALL;
    while SIGNALS_ON_DRIVER.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no signal reached this thread");
        std::thread::yield_now();
    }
    let (signals0, on_driver0) = (
        SIGNALS.load(Ordering::SeqCst),
        SIGNALS_ON_DRIVER.load(Ordering::SeqCst),
    );
    let start = Instant::now();
    let mut poll_eintr = 0;
    exchange(&mut passer, STORM_EACH_WAY, &mut poll_eintr);
    let elapsed = start.elapsed();
    let (signals, on_driver) = (
        SIGNALS.load(Ordering::SeqCst) - signals0,
        SIGNALS_ON_DRIVER.load(Ordering::SeqCst) - on_driver0,
    );
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();

    let sys_eintr = SYS_EINTR.load(Ordering::SeqCst);
    drop(passer);
    let status = peer.wait().unwrap();
    assert!(status.success(), "the peer failed: {status}");
    assert_eq!(counter.count().unwrap(), baseline, "leaked descriptors");
    println!(
        "REPORT elapsed_us={} kills={} signals={signals} signals_on_driver={on_driver} poll_eintr={poll_eintr} sys_eintr={sys_eintr}",
        elapsed.as_micros(),
        kills.load(Ordering::SeqCst),
    );
}

fn storm_peer() {
    let args = role_args();
    let max_fds: usize = args[1].parse().unwrap();
    let socket = fdpass_core::child::adopt_inherited().unwrap();
    let mut passer = Passer::new(socket, config(&args[0], max_fds)).unwrap();
    let mut interrupted = 0;
    exchange(&mut passer, STORM_EACH_WAY, &mut interrupted);
}
