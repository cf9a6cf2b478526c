//! `fdpass-soak`: two processes pass numbered descriptors both ways for a
//! long time while faults are injected from a printed seed; any loss,
//! duplicate, reordering, failure, stall or leak is a violation and exits
//! non-zero with the seed. `fdpass-soak --help` lists the options;
//! `docs/reliability.md` has the figures and the commands behind them.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fdpass_core::child::{adopt_inherited, Handoff};
use fdpass_core::{Config, Reservation, Wire};
use fdpass_soak::endpoint::{self, End, EndpointSpec, Goal};
use fdpass_soak::faults::FaultSettings;
use fdpass_soak::fdcount::FdCounter;
use fdpass_soak::rng::{seed_from_clock, Rng};
use fdpass_soak::stats::Stats;

const USAGE: &str = "\
usage: fdpass-soak [options]

Two processes (this program and a copy of it) pass pipes and memfds that
carry sequence numbers both ways through fdpass-core passers driven by
poll(2), while each injects faults into itself: RLIMIT_NOFILE lowered and
raised, the table filled and freed, threads opening and closing descriptors,
bursts that fill the socket buffer. Checks that nothing is lost, duplicated
or out of order and that descriptor counts return to their baselines.
Every combination of --wire, --reservation and --max-fds is one run. On the
classic wire each push is one descriptor; on the native wire each push is a
message of the mix (payloads of random size, with and without descriptors,
taken with message requests and, for descriptor-only messages, with
descriptor requests), checked byte for byte. Unless --wire, --reservation or
--max-fds is given, one more run uses the shipped defaults, Config::default()
(the native wire, Reservation::Auto, the default max_fds_per_message).

options:
  --seed N            seed of the injection schedule (default: from the clock;
                      always printed, and replays the same schedule)
  --count N           pushes (descriptors on the classic wire, messages on the
                      native wire) in total, both directions and all runs
                      together (default 100000)
  --seconds S         instead of --count: pass for about S seconds in total
  --wire W            classic, native or both (default both)
  --reservation R     peek, sentinel, auto, both (peek and sentinel, the
                      default) or a comma-separated list of them
  --descriptors-only  on the native wire too, push descriptors only (no mix)
  --max-fds LIST      max_fds_per_message values, comma-separated (default 1,64
                      and the library's default, Config::default())
  --end E             how each process ends its half once everything was sent
                      and received: shutdown (a graceful Passer::shutdown,
                      the default) or drop (drop the passer right after the
                      last Sent event)
  --no-faults         inject nothing (plain throughput)
  --churn-threads N   churning threads per process (default 1)
  --churn-in-full-table
                      let churn threads run while the table is limited or
                      filled with the sentinel reservation too (by default
                      they are parked then: that is the sentinel's known hole,
                      reported as DescriptorsRefused; this shows it)
  --nofile N          each process's normal soft RLIMIT_NOFILE (default 4096)
  --window N          receive requests kept outstanding (default 256)
  --sndbuf BYTES      SO_SNDBUF of both sockets, which the kernel doubles
                      (default 16384; 0 keeps the kernel's default): small
                      enough that bursts fill it even with batching
  --stall-limit S     a violation if nothing moves for S seconds (default 30)
  --help              this text

exit status: 0 all checks passed, 1 a violation (the seed is printed),
2 bad usage.";

/// What the parent was asked to do, or what a child is to do.
#[derive(Debug, Clone)]
struct Options {
    seed: Option<u64>,
    count: Option<u64>,
    seconds: Option<f64>,
    wires: Vec<Wire>,
    reservations: Vec<Reservation>,
    max_fds: Vec<usize>,
    /// Native runs push descriptors only instead of the message mix.
    descriptors_only: bool,
    end: End,
    /// Add a run of `Config::default()` (none of the three lists was given).
    defaults_run: bool,
    faults: bool,
    churn_threads: usize,
    churn_in_full_table: bool,
    nofile: u64,
    window: usize,
    stall_limit: Duration,
    sndbuf: usize,
    help: bool,
    /// Set in the child: which run this is, and its share of the goal.
    child: Option<ChildRun>,
}

#[derive(Debug, Clone, Copy)]
struct ChildRun {
    run: u64,
    goal: Goal,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seed: None,
        count: None,
        seconds: None,
        wires: vec![Wire::CLASSIC, Wire::Native],
        reservations: vec![Reservation::Peek, Reservation::Sentinel],
        max_fds: default_max_fds(),
        descriptors_only: false,
        end: End::Shutdown,
        defaults_run: true,
        faults: true,
        churn_threads: 1,
        churn_in_full_table: false,
        nofile: 4096,
        window: 256,
        stall_limit: Duration::from_secs(30),
        sndbuf: 16384,
        help: false,
        child: None,
    };
    let mut child = false;
    let mut run = None;
    let mut per_direction = None;
    let mut run_millis = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--help" | "-h" => options.help = true,
            "--seed" => options.seed = Some(number(&value(arg)?, arg)?),
            "--count" => options.count = Some(number(&value(arg)?, arg)?),
            "--seconds" => {
                let v = value(arg)?;
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("--seconds {v}: not a number"))?;
                if !(s > 0.0 && s.is_finite()) {
                    return Err(format!("--seconds {v}: must be positive"));
                }
                options.seconds = Some(s);
            }
            "--wire" => {
                options.defaults_run = false;
                options.wires = match value(arg)?.as_str() {
                    "classic" => vec![Wire::CLASSIC],
                    "native" => vec![Wire::Native],
                    "both" => vec![Wire::CLASSIC, Wire::Native],
                    other => return Err(format!("--wire {other}: classic, native or both")),
                }
            }
            "--reservation" => {
                options.defaults_run = false;
                let mut list = Vec::new();
                for word in value(arg)?.split(',') {
                    match word {
                        "peek" => list.push(Reservation::Peek),
                        "sentinel" => list.push(Reservation::Sentinel),
                        "auto" => list.push(Reservation::Auto),
                        "both" => list.extend([Reservation::Peek, Reservation::Sentinel]),
                        other => {
                            return Err(format!(
                                "--reservation {other}: peek, sentinel, auto or both"
                            ))
                        }
                    }
                }
                options.reservations = list;
            }
            "--descriptors-only" => options.descriptors_only = true,
            "--end" => {
                options.end = match value(arg)?.as_str() {
                    "shutdown" => End::Shutdown,
                    "drop" => End::Drop,
                    other => return Err(format!("--end {other}: shutdown or drop")),
                }
            }
            "--max-fds" => {
                options.defaults_run = false;
                let v = value(arg)?;
                options.max_fds = v
                    .split(',')
                    .map(|n| number(n, "--max-fds").map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
                if options
                    .max_fds
                    .iter()
                    .any(|&n| !(1..=fdpass_core::SCM_MAX_FD).contains(&n))
                {
                    return Err(format!("--max-fds {v}: each value must be 1 to 253"));
                }
            }
            "--no-faults" => options.faults = false,
            "--churn-in-full-table" => options.churn_in_full_table = true,
            "--churn-threads" => options.churn_threads = number(&value(arg)?, arg)? as usize,
            "--nofile" => options.nofile = number(&value(arg)?, arg)?,
            "--sndbuf" => options.sndbuf = number(&value(arg)?, arg)? as usize,
            "--window" => options.window = number(&value(arg)?, arg)?.max(1) as usize,
            "--stall-limit" => {
                options.stall_limit = Duration::from_secs(number(&value(arg)?, arg)?.max(1))
            }
            // Internal: how the parent starts its child for one run.
            "--child" => child = true,
            "--run" => run = Some(number(&value(arg)?, arg)?),
            "--per-direction" => per_direction = Some(number(&value(arg)?, arg)?),
            "--run-millis" => run_millis = Some(number(&value(arg)?, arg)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.count.is_some() && options.seconds.is_some() {
        return Err("give --count or --seconds, not both".into());
    }
    if options.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    if options.nofile < 256 {
        return Err("--nofile must be at least 256".into());
    }
    if child {
        let goal = match (per_direction, run_millis) {
            (Some(n), None) if n > 0 => Goal::Count(n),
            (None, Some(ms)) => Goal::For(Duration::from_millis(ms)),
            _ => return Err("--child needs --per-direction N (N > 0) or --run-millis M".into()),
        };
        let run = run.ok_or("--child needs --run")?;
        if options.seed.is_none()
            || options.wires.len() != 1
            || options.reservations.len() != 1
            || options.max_fds.len() != 1
        {
            return Err(
                "--child needs --seed, one --wire, one --reservation and one --max-fds".into(),
            );
        }
        options.child = Some(ChildRun { run, goal });
    }
    Ok(options)
}

/// One descriptor per message, a mid-sized batch, and whatever the library
/// ships as its default, so a default run always covers what users get.
fn default_max_fds() -> Vec<usize> {
    let mut sizes = vec![1, 64, Config::default().max_fds_per_message];
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn number(text: &str, name: &str) -> Result<u64, String> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{name} {text}: not a whole number"))
}

fn reservation_name(r: Reservation) -> &'static str {
    match r {
        Reservation::Peek => "peek",
        Reservation::Sentinel => "sentinel",
        Reservation::Auto => "auto",
        _ => "other",
    }
}

fn wire_name(wire: Wire) -> &'static str {
    if wire.is_native() {
        "native"
    } else {
        "classic"
    }
}

/// The passer settings of a run: `wire` (the classic wire batching
/// `max_fds` per message), `reservation` and `max_fds` per message, the
/// library's defaults otherwise.
fn run_config(wire: Wire, reservation: Reservation, max_fds: usize) -> Config {
    let wire = match wire {
        Wire::Native => Wire::Native,
        _ => Wire::Classic { batch: max_fds },
    };
    Config::default()
        .with_wire(wire)
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds)
}

/// The settings of one side of run `run`. Side 0 is the parent, 1 the child;
/// each has its own fault schedule and payload stream.
fn spec(options: &Options, seed: u64, run: u64, side: u64, goal: Goal) -> EndpointSpec {
    let reservation = options.reservations[0];
    let config = run_config(options.wires[0], reservation, options.max_fds[0]);
    // Auto is the sentinel where peek is not lossless: park churn for it too.
    let sentinel = config.reservation == Reservation::Sentinel
        || (config.reservation == Reservation::Auto
            && Reservation::lossless_here() == Reservation::Sentinel);
    EndpointSpec {
        config,
        goal,
        mix: config.wire.is_native() && !options.descriptors_only,
        fault_seed: Rng::derive(seed, run * 4 + side).next_u64(),
        payload_seed: Rng::derive(seed, run * 4 + 2 + side).next_u64(),
        peer_payload_seed: Rng::derive(seed, run * 4 + 2 + (1 - side)).next_u64(),
        end: options.end,
        faults: FaultSettings {
            enabled: options.faults,
            churn_threads: options.churn_threads,
            quiet_table: sentinel && !options.churn_in_full_table,
            nofile: options.nofile,
            min_nofile: config.max_fds_per_message as u64 + 1,
        },
        window: options.window,
        stall_limit: options.stall_limit,
        sndbuf: options.sndbuf,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fdpass-soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match options.child {
        Some(run) => child_main(&options, run),
        None => parent_main(options, &args),
    }
}

fn child_main(options: &Options, run: ChildRun) -> ExitCode {
    let seed = options.seed.expect("checked by parse");
    let result = (|| {
        let mut counter = FdCounter::new().map_err(|e| format!("opening /proc/self/fd: {e}"))?;
        let socket = adopt_inherited().map_err(|e| format!("adopting the socket: {e}"))?;
        endpoint::run(
            socket,
            &spec(options, seed, run.run, 1, run.goal),
            &mut counter,
        )
    })();
    match result {
        Ok(stats) => {
            println!("{}", stats.to_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fdpass-soak: VIOLATION (child, run {}): {e}", run.run + 1);
            ExitCode::FAILURE
        }
    }
}

/// One finished run, for the summary.
struct RunResult {
    label: String,
    /// Whether each push was a message of the mix (else one descriptor).
    mix: bool,
    wall: Duration,
    parent: Stats,
    child: Stats,
}

impl RunResult {
    /// Pushes received, both ways: descriptors, or messages of the mix.
    fn pushes(&self) -> u64 {
        self.parent.received + self.child.received
    }

    fn descriptors(&self) -> u64 {
        self.parent.descriptors_received + self.child.descriptors_received
    }

    fn payload_bytes(&self) -> u64 {
        self.parent.payload_bytes_received + self.child.payload_bytes_received
    }

    /// "N descriptors", or "N messages (F descriptors, B payload bytes)".
    fn amount(&self) -> String {
        if self.mix {
            format!(
                "{} messages ({} descriptors, {} payload bytes)",
                self.pushes(),
                self.descriptors(),
                self.payload_bytes()
            )
        } else {
            format!("{} descriptors", self.pushes())
        }
    }
}

fn parent_main(options: Options, args: &[String]) -> ExitCode {
    let seed = options.seed.unwrap_or_else(seed_from_clock);
    let replay = replay_command(seed, args);
    println!("fdpass-soak: seed {seed}");
    println!("fdpass-soak: replay with: {replay}");
    let mut runs = Vec::new();
    for &wire in &options.wires {
        for &reservation in &options.reservations {
            for &max_fds in &options.max_fds {
                runs.push((wire, reservation, max_fds));
            }
        }
    }
    let defaults = Config::default();
    let shipped = (
        defaults.wire,
        defaults.reservation,
        defaults.max_fds_per_message,
    );
    if options.defaults_run && !runs.contains(&shipped) {
        runs.push(shipped);
    }
    let n_runs = runs.len() as u64;
    let goal = match (options.count, options.seconds) {
        (_, Some(s)) => Goal::For(Duration::from_secs_f64(s / n_runs as f64)),
        (count, None) => Goal::Count(count.unwrap_or(100_000).div_ceil(2 * n_runs).max(1)),
    };
    let violation = |run: &str, what: String| {
        eprintln!("fdpass-soak: VIOLATION in run {run}: {what}");
        eprintln!("fdpass-soak: seed {seed}; replay with: {replay}");
        ExitCode::FAILURE
    };

    let mut counter = match FdCounter::new() {
        Ok(counter) => counter,
        Err(e) => return violation("setup", format!("opening /proc/self/fd: {e}")),
    };
    let mut results = Vec::new();
    for (i, &(wire, reservation, max_fds)) in runs.iter().enumerate() {
        let i = i as u64;
        let what = if wire.is_native() && !options.descriptors_only {
            "message mix"
        } else {
            "descriptors"
        };
        let shipped = if run_config(wire, reservation, max_fds) == defaults {
            "shipped defaults: "
        } else {
            ""
        };
        let label = format!(
            "{}/{} ({shipped}{}, {}, max_fds {max_fds}, {what})",
            i + 1,
            n_runs,
            wire_name(wire),
            reservation_name(reservation),
        );
        let mut run_options = options.clone();
        run_options.wires = vec![wire];
        run_options.reservations = vec![reservation];
        run_options.max_fds = vec![max_fds];
        match one_run(&run_options, seed, i, goal, &mut counter) {
            Ok((wall, parent, child)) => {
                let result = RunResult {
                    label,
                    mix: wire.is_native() && !options.descriptors_only,
                    wall,
                    parent,
                    child,
                };
                print_run(&result);
                results.push(result);
            }
            Err(what) => return violation(&label, what),
        }
    }
    print_summary(&results, seed, &replay);
    ExitCode::SUCCESS
}

/// Runs one child and this process's half; checks this process's count.
fn one_run(
    options: &Options,
    seed: u64,
    run: u64,
    goal: Goal,
    counter: &mut FdCounter,
) -> Result<(Duration, Stats, Stats), String> {
    let count = |counter: &mut FdCounter| {
        counter
            .count()
            .map_err(|e| format!("counting descriptors: {e}"))
    };
    let before = count(counter)?;
    let handoff = Handoff::new().map_err(|e| format!("socketpair: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg("--child")
        .args(["--run", &run.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--wire", wire_name(options.wires[0])])
        .args(["--reservation", reservation_name(options.reservations[0])])
        .args(["--max-fds", &options.max_fds[0].to_string()])
        .args(["--churn-threads", &options.churn_threads.to_string()])
        .args(["--nofile", &options.nofile.to_string()])
        .args(["--window", &options.window.to_string()])
        .args(["--sndbuf", &options.sndbuf.to_string()])
        .args(["--stall-limit", &options.stall_limit.as_secs().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    match goal {
        Goal::Count(n) => command.args(["--per-direction", &n.to_string()]),
        Goal::For(d) => command.args(["--run-millis", &d.as_millis().to_string()]),
    };
    if !options.faults {
        command.arg("--no-faults");
    }
    if options.descriptors_only {
        command.arg("--descriptors-only");
    }
    if options.end == End::Drop {
        command.args(["--end", "drop"]);
    }
    if options.churn_in_full_table {
        command.arg("--churn-in-full-table");
    }
    handoff.configure(&mut command);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting the child: {e}"))?;
    let socket = handoff.finish();
    let ours = endpoint::run(socket, &spec(options, seed, run, 0, goal), counter);
    if let Err(what) = ours {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("parent: {what}"));
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    let wall = start.elapsed();
    if !output.status.success() {
        return Err(format!(
            "the child failed ({}); its message is above",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let child_stats = stdout
        .lines()
        .find_map(Stats::parse)
        .ok_or_else(|| format!("the child printed no figures: {stdout:?}"))?;
    let parent_stats = ours.expect("checked above");
    let after = count(counter)?;
    if after != before {
        return Err(format!(
            "parent: {after} descriptors open after the run, {before} before"
        ));
    }
    let expected = match goal {
        Goal::Count(n) => Some(n),
        Goal::For(_) => None,
    };
    for (side, stats, peer) in [
        ("parent", &parent_stats, &child_stats),
        ("child", &child_stats, &parent_stats),
    ] {
        if stats.received != peer.sent {
            return Err(format!(
                "{side} received {} pushes, its peer sent {}",
                stats.received, peer.sent
            ));
        }
        if let Some(n) = expected {
            if stats.received != n {
                return Err(format!(
                    "{side} received {} pushes, not {n}",
                    stats.received
                ));
            }
        }
    }
    Ok((wall, parent_stats, child_stats))
}

fn replay_command(seed: u64, args: &[String]) -> String {
    let mut words = vec!["fdpass-soak".to_string(), "--seed".into(), seed.to_string()];
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--seed" {
            skip = true;
            continue;
        }
        words.push(arg.clone());
    }
    words.join(" ")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn print_run(r: &RunResult) {
    let (p, c) = (&r.parent, &r.child);
    let secs = r.wall.as_secs_f64();
    println!(
        "run {}: {} in {:.2} s ({:.0} pushes/s); table full: {}+{} waits ({:.0}+{:.0} ms); \
         longest stall {:.1} ms; peak fds {}/{} (baseline {}/{}); bursts {}+{} ({} filled the buffer); \
         socket full {}+{}; send back-offs {}+{}; max queue {}/{}; limit lowered {}+{}; table filled {}+{}; \
         churn {}+{} periods, {} ops; sources blocked {}+{}",
        r.label,
        r.amount(),
        secs,
        r.pushes() as f64 / secs,
        p.table_full_waits,
        c.table_full_waits,
        ms(p.table_full_wait_us),
        ms(c.table_full_wait_us),
        ms(p.longest_stall_us.max(c.longest_stall_us)),
        p.peak_fds,
        c.peak_fds,
        p.baseline_fds,
        c.baseline_fds,
        p.bursts,
        c.bursts,
        p.bursts_filled_buffer + c.bursts_filled_buffer,
        p.socket_full,
        c.socket_full,
        p.send_backoffs,
        c.send_backoffs,
        p.max_queue,
        c.max_queue,
        p.limit_lowered,
        c.limit_lowered,
        p.table_filled,
        c.table_filled,
        p.churn_periods,
        c.churn_periods,
        p.churn_ops + c.churn_ops,
        p.source_blocked,
        c.source_blocked,
    );
    let _ = std::io::stdout().flush();
}

fn print_summary(results: &[RunResult], seed: u64, replay: &str) {
    let total: u64 = results.iter().map(RunResult::pushes).sum();
    let descriptors: u64 = results.iter().map(RunResult::descriptors).sum();
    let messages: u64 = results
        .iter()
        .filter(|r| r.mix)
        .map(RunResult::pushes)
        .sum();
    let bytes: u64 = results.iter().map(RunResult::payload_bytes).sum();
    let wall: f64 = results.iter().map(|r| r.wall.as_secs_f64()).sum();
    let stall = results
        .iter()
        .map(|r| r.parent.longest_stall_us.max(r.child.longest_stall_us))
        .max()
        .unwrap_or(0);
    let waits: u64 = results
        .iter()
        .map(|r| r.parent.table_full_waits + r.child.table_full_waits)
        .sum();
    println!();
    println!("| run | pushes | descriptors | payload bytes | seconds | pushes/s | table-full waits (parent+child) | time waiting (ms) | longest stall (ms) | peak fds parent/child | bursts (filled buffer) | socket full | limit lowered | table filled | churn ops |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let (p, c) = (&r.parent, &r.child);
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {}+{} | {:.0}+{:.0} | {:.1} | {}/{} | {} ({}) | {} | {} | {} | {} |",
            r.label,
            r.pushes(),
            r.descriptors(),
            r.payload_bytes(),
            r.wall.as_secs_f64(),
            r.pushes() as f64 / r.wall.as_secs_f64(),
            p.table_full_waits,
            c.table_full_waits,
            ms(p.table_full_wait_us),
            ms(c.table_full_wait_us),
            ms(p.longest_stall_us.max(c.longest_stall_us)),
            p.peak_fds,
            c.peak_fds,
            p.bursts + c.bursts,
            p.bursts_filled_buffer + c.bursts_filled_buffer,
            p.socket_full + c.socket_full,
            p.limit_lowered + c.limit_lowered,
            p.table_filled + c.table_filled,
            p.churn_ops + c.churn_ops,
        );
    }
    println!();
    println!(
        "fdpass-soak: PASS: {total} pushes ({descriptors} descriptors; {messages} of them messages, \
         carrying {bytes} payload bytes) in {wall:.1} s ({:.0}/s), none lost, duplicated, altered \
         or out of order; {waits} table-full waits; longest stall {:.1} ms; descriptor counts \
         back to baseline",
        total as f64 / wall,
        ms(stall)
    );
    println!("fdpass-soak: seed {seed}; replay with: {replay}");
}
