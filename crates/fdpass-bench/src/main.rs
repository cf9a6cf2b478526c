//! # fdpass-bench
//!
//! Measures fdpass against the limit (a raw `sendmsg`/`recvmsg` loop) and
//! against other crates that pass descriptors, in one run, and writes
//! `docs/performance.md` and `docs/throughput-vs-batch.svg`.
//!
//! ```text
//! cargo run --release -p fdpass-bench             # the full run, 3 runs of a few minutes
//! cargo run --release -p fdpass-bench -- --quick  # seconds: proves it still runs
//! ```
//!
//! Every figure comes from two processes: this binary starts itself again as
//! the child (`--child CASE`), which receives (or echoes) while the parent
//! sends. See `docs/performance.md` for what is measured and how.

mod alloc;
mod case;
mod chart;
mod child;
mod endpoint;
mod idle;
mod measure;
mod pin;
mod report;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Counts allocations, for the steady-state allocation check.
#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// The error type of the whole benchmark.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
usage: fdpass-bench [--quick] [--runs N] [--only TEXT] [--out DIR] [--fds N]

  --quick      a few seconds of tiny runs, to prove the benchmark still works;
               its report goes to a temporary directory, removed afterwards
  --runs N     measure everything N times over, each run with fresh child
               processes, and report the median of the runs' figures
               (default 3 for a full run, 1 otherwise)
  --only TEXT  only the cases whose name contains TEXT (for example
               core:native:128:);
               several texts separated by commas select every case any names
  --out DIR    where to write performance.md and throughput-vs-batch.svg
               (default: the workspace's docs directory for a full run, a
               temporary directory for a --quick, --only or --fds run)
  --fds N      one repetition of exactly N descriptors and no round trips:
               a fixed amount of work for profilers";

/// Command-line options of a measuring run.
#[derive(Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub runs: Option<usize>,
    pub only: Option<String>,
    pub out: Option<PathBuf>,
    pub fds: Option<usize>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, BoxError> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--runs" => options.runs = Some(args.next().ok_or(USAGE)?.parse()?),
                "--only" => options.only = Some(args.next().ok_or(USAGE)?.clone()),
                "--out" => options.out = Some(args.next().ok_or(USAGE)?.into()),
                "--fds" => options.fds = Some(args.next().ok_or(USAGE)?.parse()?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}").into()),
            }
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, result) = match args.first().map(String::as_str) {
        Some("--child") => (
            "child",
            child::serve(args.get(1).map_or("", |s| s.as_str())),
        ),
        Some("--idle") => ("idle", idle::serve(&args[1..])),
        _ => ("bench", Options::parse(&args).and_then(run)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fdpass-bench {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises `RLIMIT_NOFILE`: to 1,048,576 (or the system's `nr_open`, if
/// lower) where the process may raise its hard limit, else to the hard limit.
/// Returns the soft limit now in force.
pub fn raise_descriptor_limit() -> usize {
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let wanted = Rlimit {
        current: Some(ceiling),
        maximum: current.maximum.map(|hard| hard.max(ceiling)),
    };
    if setrlimit(Resource::Nofile, wanted).is_err() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard.min(ceiling)),
                maximum: current.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| n as usize)
}

fn run(options: Options) -> Result<(), BoxError> {
    let started = Instant::now();
    let load_before = report::load_average();
    let limit = raise_descriptor_limit();
    // The sender holds one repetition's descriptors at once; beyond what the
    // limit allows, a repetition is sent in chunks.
    let chunk = limit.saturating_sub(4096).max(1024);
    let mut budget = if options.quick {
        measure::Budget::quick(chunk)
    } else {
        measure::Budget::full(chunk)
    };
    if let Some(n) = options.fds {
        budget = measure::Budget::fixed(n, chunk);
    }
    let (origin, _write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;

    let plan: Vec<_> = case::plan(options.quick)
        .into_iter()
        .filter(|p| match &options.only {
            None => true,
            Some(only) => {
                let name = p.case.to_string();
                only.split(',').any(|text| name.contains(text))
            }
        })
        .collect();
    let partial = options.quick || options.only.is_some() || options.fds.is_some();
    let runs = options.runs.unwrap_or(if partial { 1 } else { 3 }).max(1);
    let mut all_runs = Vec::new();
    for run in 0..runs {
        if runs > 1 {
            eprintln!("run {}/{runs}", run + 1);
        }
        all_runs.push(measure_once(&plan, &budget, &origin)?);
    }
    let results = measure::merge_runs(all_runs)?;
    for measured in &results {
        eprintln!(
            "{:<36} {:>8.3} M/s{}",
            measured.planned.case.to_string(),
            measure::median(&measured.throughput) / 1e6,
            if measured.round_trip.is_empty() {
                String::new()
            } else {
                format!(
                    "   round trip {:.2} us",
                    measure::median(&measured.round_trip) * 1e6
                )
            }
        );
    }

    let idle_wanted = if options.quick { 200 } else { 10_000 };
    let mut footprints = Vec::new();
    if options.only.is_none() {
        for kind in idle::KINDS {
            let count = idle::count_for(kind, idle_wanted, limit);
            let footprint = idle::measure(kind, count)?;
            eprintln!(
                "idle {kind}: {} passers, {:.2} descriptors and {:.0} heap bytes each",
                footprint.passers, footprint.fds_per_passer, footprint.heap_per_passer
            );
            footprints.push(footprint);
        }
    }

    let context = report::Context {
        load_before,
        runs,
        quick: options.quick,
        descriptor_limit: limit,
        budget,
        elapsed: started.elapsed(),
    };
    let report = report::Report::new(&results, &footprints, context);
    let markdown = report.markdown();
    println!("{}", report.main_table());

    // Only a full run of every case replaces the published report.
    let out = match (&options.out, partial) {
        (Some(dir), _) => dir.clone(),
        (None, false) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")),
        (None, true) => std::env::temp_dir().join(format!("fdpass-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let doc = out.join("performance.md");
    let svg = out.join("throughput-vs-batch.svg");
    std::fs::write(&doc, markdown)?;
    chart::draw(&svg, &report.sweep_series(), &report.cpu_series())?;
    if options.quick && options.out.is_none() {
        // A quick run only proves that everything still runs.
        std::fs::remove_dir_all(&out)?;
        eprintln!("wrote and removed {} and {}", doc.display(), svg.display());
    } else {
        eprintln!("wrote {} and {}", doc.display(), svg.display());
    }
    Ok(())
}

/// One run: every case of `plan` started and warmed up, then the
/// repetitions round all of them in turn; each case's measurements.
fn measure_once(
    plan: &[case::Planned],
    budget: &measure::Budget,
    origin: &std::os::fd::OwnedFd,
) -> Result<Vec<measure::Measured>, BoxError> {
    // Progress on one rewritten line at a terminal, a line per round otherwise.
    let tty = std::io::stderr().is_terminal();
    let mut running = Vec::new();
    for (i, planned) in plan.iter().enumerate() {
        if tty {
            eprint!("\rstarting and warming up case {}/{}   ", i + 1, plan.len());
        }
        running.push(
            measure::start(*planned, budget, origin)
                .map_err(|e| format!("case {}: {e}", planned.case))?,
        );
    }
    if tty {
        eprintln!();
    }
    eprintln!("{} cases started and warmed up", plan.len());
    for rep in 0..budget.reps {
        for (i, case) in running.iter_mut().enumerate() {
            if tty {
                eprint!(
                    "\rrepetition {}/{}, case {}/{}   ",
                    rep + 1,
                    budget.reps,
                    i + 1,
                    plan.len()
                );
            }
            case.repeat(budget, origin)
                .map_err(|e| format!("case {}: {e}", case.case()))?;
        }
        if tty {
            eprintln!();
        }
        eprintln!("repetition {}/{} done", rep + 1, budget.reps);
    }
    running.into_iter().map(measure::Running::finish).collect()
}
