//! Turning the measurements into `docs/performance.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::case::{message_cases, Case, Imp, Load, Recv, WireKind, PAGES_PER_SEND, SWEEP};
use crate::idle::Footprint;
use crate::measure::{median, spread, Budget, Measured};

/// Where the time goes in the cases that miss a target: written from
/// profiles of this benchmark, kept beside the code that produces the figures.
const PROFILE_NOTES: &str = include_str!("../profile-notes.md");

/// The default batch size (`Config::default().max_fds_per_message`).
fn default_batch() -> usize {
    fdpass_core::Config::default().max_fds_per_message
}

/// Facts about the run itself.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The 1-minute load average when the run started.
    pub load_before: f64,
    /// Whole runs of every case, each with fresh child processes.
    pub runs: usize,
    pub quick: bool,
    pub descriptor_limit: usize,
    pub budget: Budget,
    pub elapsed: Duration,
}

pub struct Report<'a> {
    by_case: HashMap<Case, &'a Measured>,
    results: &'a [Measured],
    footprints: &'a [Footprint],
    context: Context,
}

/// A throughput or latency reference of the raw loop.
#[derive(Debug, Clone, Copy)]
struct Reference {
    plain: Option<f64>,
    peek: Option<f64>,
}

fn ratio(value: Option<f64>, reference: Option<f64>) -> Option<f64> {
    Some(value? / reference?)
}

fn show_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| format!("{r:.2}×"))
}

fn show_rate(fds_per_second: f64) -> String {
    format!("{:.3} M", fds_per_second / 1e6)
}

fn show_per_fd(count: u64, descriptors: usize) -> String {
    if count == 0 {
        "0".to_string()
    } else {
        let per = count as f64 / descriptors as f64;
        if per >= 0.01 {
            format!("{per:.2}")
        } else {
            format!("{per:.1e}")
        }
    }
}

fn recv_label(recv: Recv) -> &'static str {
    match recv {
        Recv::Plain => "plain recvmsg",
        Recv::Peek => "peek + consume",
        Recv::Sentinel => "sentinel",
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

impl<'a> Report<'a> {
    pub fn new(results: &'a [Measured], footprints: &'a [Footprint], context: Context) -> Self {
        let by_case = results.iter().map(|m| (m.planned.case, m)).collect();
        Report {
            by_case,
            results,
            footprints,
            context,
        }
    }

    fn throughput(&self, case: Case) -> Option<f64> {
        self.by_case.get(&case).map(|m| median(&m.throughput))
    }

    /// Median CPU nanoseconds per descriptor, both processes together.
    fn cpu(&self, case: Case) -> Option<f64> {
        self.cpu_split(case).map(|(send, recv)| send + recv)
    }

    /// Median CPU nanoseconds per descriptor of the sender and of the
    /// receiver (medians of the repetitions' totals and of each side).
    fn cpu_split(&self, case: Case) -> Option<(f64, f64)> {
        let m = self
            .by_case
            .get(&case)
            .filter(|m| !m.cpu_per_fd.is_empty())?;
        let send: Vec<f64> = m.cpu_per_fd.iter().map(|c| c.0).collect();
        let recv: Vec<f64> = m.cpu_per_fd.iter().map(|c| c.1).collect();
        Some((median(&send), median(&recv)))
    }

    /// The raw loop doing the same kernel work: the same batch size, with
    /// peek + consume for the peek reservation and plain `recvmsg` otherwise.
    fn raw_like(&self, case: Case) -> Case {
        let recv = if case.recv == Recv::Peek {
            Recv::Peek
        } else {
            Recv::Plain
        };
        Case::new(Imp::Raw, case.batch, recv)
    }

    fn round_trip(&self, case: Case) -> Option<f64> {
        self.by_case
            .get(&case)
            .filter(|m| !m.round_trip.is_empty())
            .map(|m| median(&m.round_trip))
    }

    fn raw_throughput(&self, batch: usize) -> Reference {
        Reference {
            plain: self.throughput(Case::new(Imp::Raw, batch, Recv::Plain)),
            peek: self.throughput(Case::new(Imp::Raw, batch, Recv::Peek)),
        }
    }

    fn raw_round_trip(&self) -> Reference {
        Reference {
            plain: self.round_trip(Case::new(Imp::Raw, 1, Recv::Plain)),
            peek: self.round_trip(Case::new(Imp::Raw, 1, Recv::Peek)),
        }
    }

    /// The median round trip with both processes on one processor.
    fn round_trip_pinned(&self, case: Case) -> Option<f64> {
        self.by_case
            .get(&case)
            .filter(|m| !m.round_trip_pinned.is_empty())
            .map(|m| median(&m.round_trip_pinned))
    }

    fn raw_round_trip_pinned(&self) -> Reference {
        Reference {
            plain: self.round_trip_pinned(Case::new(Imp::Raw, 1, Recv::Plain)),
            peek: self.round_trip_pinned(Case::new(Imp::Raw, 1, Recv::Peek)),
        }
    }

    /// Round trips, on two processors and on one, with their ratios to the
    /// raw loop's measured the same way.
    pub fn round_trip_table(&self) -> String {
        let rtt = self.raw_round_trip();
        let pinned = self.raw_round_trip_pinned();
        let mut t = String::new();
        t.push_str(
            "| implementation | fds/msg | receive | round trip (µs, spread) | × raw plain \
             | × raw peek | on one processor (µs, spread) | × raw plain | × raw peek |\n\
             |---|--:|---|--:|--:|--:|--:|--:|--:|\n",
        );
        for case in self.headline_cases() {
            let m = self.by_case[&case];
            let (Some(rt), Some(rp)) = (self.round_trip(case), self.round_trip_pinned(case)) else {
                continue;
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.1} ({:.0}%) | {} | {} | {:.1} ({:.0}%) | {} | {} |",
                case.label(),
                case.batch,
                recv_label(case.recv),
                rt * 1e6,
                100.0 * spread(&m.round_trip),
                show_ratio(ratio(Some(rt), rtt.plain)),
                show_ratio(ratio(Some(rt), rtt.peek)),
                rp * 1e6,
                100.0 * spread(&m.round_trip_pinned),
                show_ratio(ratio(Some(rp), pinned.plain)),
                show_ratio(ratio(Some(rp), pinned.peek)),
            );
        }
        t
    }

    /// The headline cases, in table order.
    fn headline_cases(&self) -> Vec<Case> {
        let d = default_batch();
        let mut cases = Vec::new();
        for recv in [Recv::Plain, Recv::Peek] {
            for batch in [1, d, 253] {
                cases.push(Case::new(Imp::Raw, batch, recv));
            }
        }
        for imp in Imp::FDPASS {
            for wire in [WireKind::Classic, WireKind::Native] {
                for batch in [1, d, 253] {
                    cases.push(Case::new(imp, batch, Recv::Peek).on(wire));
                }
                for batch in [1, 8, d] {
                    cases.push(Case::new(imp, batch, Recv::Sentinel).on(wire));
                }
            }
        }
        for imp in Imp::OTHER_SENDERS {
            for wire in [WireKind::Classic, WireKind::Native] {
                cases.push(Case::new(imp, d, Recv::Peek).on(wire));
            }
        }
        cases.push(Case::new(Imp::Sendfd, 1, Recv::Plain));
        cases.push(Case::new(Imp::Sendfd, d, Recv::Plain));
        cases.push(Case::new(Imp::Passfd, 1, Recv::Plain));
        cases.push(Case::new(Imp::AsyncSendFd, 1, Recv::Plain));
        cases.retain(|c| self.by_case.contains_key(c));
        cases
    }

    /// The main table: every headline case with its ratios to the raw loop.
    pub fn main_table(&self) -> String {
        let raw1 = self.raw_throughput(1);
        let raw253 = self.raw_throughput(253);
        let mut t = String::new();
        t.push_str(
            "| implementation | fds/msg | receive | throughput (fd/s) | spread \
             | × raw 1/msg plain | × raw 1/msg peek | × raw 253/msg plain | × raw 253/msg peek \
             | CPU per fd, send + recv (µs) | × raw CPU | allocations per fd (send / recv) |\n",
        );
        t.push_str("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for case in self.headline_cases() {
            let m = self.by_case[&case];
            let tput = self.throughput(case);
            let cpu = self.cpu(case);
            let a = m.allocations;
            let allocs = if case.imp == Imp::Raw {
                "–".to_string()
            } else {
                format!(
                    "{} / {}",
                    show_per_fd(a.sender, a.descriptors),
                    show_per_fd(a.receiver, a.descriptors)
                )
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {:.0}% | {} | {} | {} | {} | {} | {} | {} |",
                case.label(),
                case.batch,
                recv_label(case.recv),
                show_rate(median(&m.throughput)),
                spread(&m.throughput) * 100.0,
                show_ratio(ratio(tput, raw1.plain)),
                show_ratio(ratio(tput, raw1.peek)),
                show_ratio(ratio(tput, raw253.plain)),
                show_ratio(ratio(tput, raw253.peek)),
                self.cpu_split(case).map_or_else(
                    || "–".to_string(),
                    |(send, recv)| format!("{:.2} + {:.2}", send / 1e3, recv / 1e3)
                ),
                show_ratio(ratio(cpu, self.cpu(self.raw_like(case)))),
                allocs,
            );
        }
        t
    }

    /// Throughput against batch size, one series per line of the chart.
    pub fn sweep_series(&self) -> Vec<(String, Vec<(usize, f64)>)> {
        self.series(false, |case| self.throughput(case))
    }

    /// CPU nanoseconds per descriptor against batch size, for the chart.
    pub fn cpu_series(&self) -> Vec<(String, Vec<(usize, f64)>)> {
        self.series(false, |case| self.cpu(case))
    }

    /// The series of the sweep (peek, and the raw loops), or of the sentinel
    /// cases (a few sizes only: the sentinel is meant for small batches),
    /// with `metric` at each batch size measured.
    fn series(
        &self,
        sentinel: bool,
        metric: impl Fn(Case) -> Option<f64>,
    ) -> Vec<(String, Vec<(usize, f64)>)> {
        let mut lines: Vec<(String, Imp, Recv, WireKind)> = Vec::new();
        if sentinel {
            for wire in [WireKind::Classic, WireKind::Native] {
                for imp in Imp::FDPASS {
                    lines.push((
                        format!("{} ({}, sentinel)", imp.label(), wire.id()),
                        imp,
                        Recv::Sentinel,
                        wire,
                    ));
                }
            }
        } else {
            lines.push((
                "raw loop, plain recvmsg".into(),
                Imp::Raw,
                Recv::Plain,
                WireKind::Bare,
            ));
            lines.push((
                "raw loop, peek + consume".into(),
                Imp::Raw,
                Recv::Peek,
                WireKind::Bare,
            ));
            // The native wire is swept in fdpass-core only (the adapters at
            // the headline sizes: see the native wire's own section).
            let native = [(WireKind::Native, Imp::Core)];
            let classic = Imp::FDPASS.map(|imp| (WireKind::Classic, imp));
            for (wire, imp) in classic.into_iter().chain(native) {
                lines.push((
                    format!("{} ({}, peek)", imp.label(), wire.id()),
                    imp,
                    Recv::Peek,
                    wire,
                ));
            }
        }
        lines
            .into_iter()
            .map(|(name, imp, recv, wire)| {
                let points: Vec<(usize, f64)> = SWEEP
                    .iter()
                    .filter_map(|&b| Some((b, metric(Case::new(imp, b, recv).on(wire))?)))
                    .collect();
                (name, points)
            })
            .filter(|(_, points)| !points.is_empty())
            .collect()
    }

    fn sweep_tables(&self) -> String {
        let mut series = self.sweep_series();
        series.extend(self.series(true, |case| self.throughput(case)));
        let mut cpu = self.series(false, |case| self.cpu(case));
        cpu.extend(self.series(true, |case| self.cpu(case)));
        let batches: Vec<usize> = SWEEP
            .iter()
            .copied()
            .filter(|b| series.iter().any(|(_, p)| p.iter().any(|(x, _)| x == b)))
            .collect();
        let header = |t: &mut String, first: &str| {
            let _ = write!(t, "| {first} |");
            for b in &batches {
                let _ = write!(t, " {b} |");
            }
            t.push('\n');
            t.push_str("|---|");
            for _ in &batches {
                t.push_str("--:|");
            }
            t.push('\n');
        };
        let mut t = String::new();
        t.push_str("Million descriptors per second, by descriptors per message:\n\n");
        header(&mut t, "series");
        for (name, points) in &series {
            let _ = write!(t, "| {name} |");
            for b in &batches {
                match points.iter().find(|(x, _)| x == b) {
                    Some((_, v)) => {
                        let _ = write!(t, " {:.3} |", v / 1e6);
                    }
                    None => t.push_str(" |"),
                }
            }
            t.push('\n');
        }
        t.push_str(
            "\nCPU microseconds per descriptor (both processes, every thread, kernel \
             included), by descriptors per message:\n\n",
        );
        header(&mut t, "series");
        for (name, points) in &cpu {
            let _ = write!(t, "| {name} |");
            for b in &batches {
                match points.iter().find(|(x, _)| x == b) {
                    Some((_, v)) => {
                        let _ = write!(t, " {:.2} |", v / 1e3);
                    }
                    None => t.push_str(" |"),
                }
            }
            t.push('\n');
        }
        for (label, recv) in [
            ("plain recvmsg", Recv::Plain),
            ("peek + consume", Recv::Peek),
        ] {
            let _ = writeln!(
                t,
                "\nAs a ratio to the raw loop ({label}) at the same batch size:\n"
            );
            header(&mut t, "series");
            for (name, points) in series.iter().skip(2) {
                let _ = write!(t, "| {name} |");
                for b in &batches {
                    let raw = self.throughput(Case::new(Imp::Raw, *b, recv));
                    let v = points.iter().find(|(x, _)| x == b).map(|(_, v)| *v);
                    match ratio(v, raw) {
                        Some(r) => {
                            let _ = write!(t, " {r:.2} |");
                        }
                        None => t.push_str(" |"),
                    }
                }
                t.push('\n');
            }
        }
        t
    }

    /// The native wire against the classic one, descriptors only, and the
    /// message cases against the raw loop sending the same bytes.
    pub fn native_text(&self) -> String {
        let d = default_batch();
        let mut t = String::new();
        let us = |v: Option<f64>, scale: f64| {
            v.map_or_else(|| "–".to_string(), |v| format!("{:.2}", v * scale))
        };
        t.push_str(
            "### Descriptors only: the native wire against the classic wire\n\n\
             The same cases twice in the same run, interleaved: `Wire::Classic { batch: N }` \
             (one byte per descriptor) and `Wire::Native` (an 8-byte frame header per \
             descriptor, several frames per `sendmsg`, after a 24-byte hello each way), both \
             with `max_fds_per_message` N. Target: native ≥ 0.95× classic at the default \
             batch.\n\n\
             | implementation | fds/msg | receive | classic (M fd/s) | native (M fd/s) \
             | native ÷ classic | in each run | target ≥ 0.95× | CPU per fd, classic (µs) \
             | native (µs) | native ÷ classic CPU | round trip classic (µs) | native (µs) |\n\
             |---|--:|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|\n",
        );
        let mut cases = Vec::new();
        for imp in Imp::FDPASS {
            for batch in [1, d, 253] {
                cases.push(Case::new(imp, batch, Recv::Peek));
            }
            cases.push(Case::new(imp, d, Recv::Sentinel));
        }
        for imp in Imp::OTHER_SENDERS {
            cases.push(Case::new(imp, d, Recv::Peek));
        }
        let mut ratios = Vec::new();
        for classic in cases {
            let native = classic.on(WireKind::Native);
            let (c, n) = (self.throughput(classic), self.throughput(native));
            if c.is_none() || n.is_none() {
                continue;
            }
            let r = ratio(n, c);
            let target = if classic.batch == d {
                if classic.recv == Recv::Peek && Imp::FDPASS.contains(&classic.imp) {
                    ratios.extend(r);
                }
                verdict(r.map(|r| r >= 0.95)).to_string()
            } else {
                "–".to_string()
            };
            let (cc, nc) = (self.cpu(classic), self.cpu(native));
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {target} | {} | {} | {} | {} | {} |",
                classic.imp.label(),
                classic.batch,
                recv_label(classic.recv),
                us(c, 1e-6),
                us(n, 1e-6),
                show_ratio(r),
                self.per_run_ratios(native, classic),
                us(cc, 1e-3),
                us(nc, 1e-3),
                show_ratio(ratio(nc, cc)),
                us(self.round_trip(classic), 1e6),
                us(self.round_trip(native), 1e6),
            );
        }
        if !ratios.is_empty() {
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                t,
                "\nAt the default batch with the peek reservation, native ÷ classic ranges \
                 from {lo:.2}× to {hi:.2}× across the five implementations (median {:.2}×).",
                median(&ratios)
            );
        }

        t.push_str(
            "\n### The sentinel reservation on both wires\n\n\
             At the default batch: throughput against the raw loop at 253 per message \
             (target ≥ 0.8×), CPU per descriptor against the raw loop at the same batch \
             (target ≤ 1.2×), round trip against the raw loop's (target ≤ 1.5×); the raw \
             loop with plain `recvmsg`, whose kernel work the sentinel shares.\n\n\
             | implementation | wire | throughput (M fd/s) | × raw 253 | CPU per fd (µs) \
             | × raw CPU | round trip (µs) | × raw | on one processor (µs) | × raw |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        let raw253 = self.throughput(Case::new(Imp::Raw, 253, Recv::Plain));
        let raw_cpu = self.cpu(Case::new(Imp::Raw, d, Recv::Plain));
        let raw_rtt = self.round_trip(Case::new(Imp::Raw, 1, Recv::Plain));
        let raw_pinned = self.round_trip_pinned(Case::new(Imp::Raw, 1, Recv::Plain));
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Sentinel).on(wire);
            let Some(tput) = self.throughput(case) else {
                continue;
            };
            let (cpu, rtt, pinned) = (
                self.cpu(case),
                self.round_trip(case),
                self.round_trip_pinned(case),
            );
            let _ = writeln!(
                t,
                "| {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
                imp.label(),
                wire.id(),
                tput / 1e6,
                show_ratio(ratio(Some(tput), raw253)),
                us(cpu, 1e-3),
                show_ratio(ratio(cpu, raw_cpu)),
                us(rtt, 1e6),
                show_ratio(ratio(rtt, raw_rtt)),
                us(pinned, 1e6),
                show_ratio(ratio(pinned, raw_pinned)),
            );
        }

        t.push_str(
            "\n### Messages: payload with and without a descriptor\n\n\
             fdpass-core on the native wire with its default settings (128 descriptors and \
             64 KiB of payload per message at most, the peek reservation), sending each \
             repetition as messages of one size (`push_send_message`, up to 1024 queued at \
             a time, then the loop until the kernel has them) and receiving them with one \
             `push_recv_message` at a time and the rest of what was read with \
             `try_recv_message`. Each message's payload is a fresh `Vec<u8>` on both sides \
             (the API's), and the receiver checks every message's size. Against the raw \
             loop sending the same payload bytes and descriptor with no framing: one \
             message per `sendmsg`, and batched as fdpass batches them (128 messages of 64 \
             bytes and their 128 descriptors per `sendmsg`; 16 messages of 4 KiB, 64 KiB, \
             per `sendmsg`, where fdpass fits 15 frames of 4104 bytes under its 64 KiB + 8 \
             limit). The raw receiver reads whatever has arrived and counts bytes and \
             descriptors.\n\n\
             | message | implementation | messages per `sendmsg` | receive | messages/s | spread \
             | payload MB/s | × raw 1/send | × raw batched | in each run \
             | CPU per message, send + recv (µs) | × raw batched CPU \
             | allocations per message (send / recv) |\n\
             |---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for case in message_cases() {
            let Some(m) = self.by_case.get(&case) else {
                continue;
            };
            let load = case.load;
            let raw_one = self.throughput(Case::new(Imp::Raw, 1, Recv::Plain).with_load(load));
            let batched = match load {
                Load::Page => PAGES_PER_SEND,
                _ => d,
            };
            let raw_batched = Case::new(Imp::Raw, batched, Recv::Plain).with_load(load);
            let tput = self.throughput(case);
            let per_send = if case.imp == Imp::Raw {
                case.batch.to_string()
            } else {
                let config = case.config();
                let frame = 8 + load.payload_len();
                let by_bytes = (8 + config.max_payload_len) / frame;
                let by_fds = if load.fds() == 0 {
                    usize::MAX
                } else {
                    config.max_fds_per_message / load.fds()
                };
                format!("≤ {}", by_bytes.min(by_fds))
            };
            let a = m.allocations;
            let allocs = if case.imp == Imp::Raw {
                "–".to_string()
            } else {
                format!(
                    "{} / {}",
                    show_per_fd(a.sender, a.descriptors),
                    show_per_fd(a.receiver, a.descriptors)
                )
            };
            let _ = writeln!(
                t,
                "| {} | {} | {per_send} | {} | {} | {:.0}% | {:.1} | {} | {} | {} | {} | {} | {allocs} |",
                load.label(),
                case.label(),
                recv_label(case.recv),
                show_rate(median(&m.throughput)),
                spread(&m.throughput) * 100.0,
                median(&m.throughput) * load.payload_len() as f64 / 1e6,
                show_ratio(ratio(tput, raw_one)),
                show_ratio(ratio(tput, self.throughput(raw_batched))),
                if case.imp == Imp::Raw {
                    "–".to_string()
                } else {
                    self.per_run_ratios(case, raw_batched)
                },
                self.cpu_split(case).map_or_else(
                    || "–".to_string(),
                    |(send, recv)| format!("{:.2} + {:.2}", send / 1e3, recv / 1e3)
                ),
                show_ratio(ratio(self.cpu(case), self.cpu(raw_batched))),
            );
        }
        t
    }

    /// `case`'s throughput over `reference`'s in each run, when the figures
    /// are the medians of several runs ("–" for a single run).
    fn per_run_ratios(&self, case: Case, reference: Case) -> String {
        let (Some(a), Some(b)) = (self.by_case.get(&case), self.by_case.get(&reference)) else {
            return "–".to_string();
        };
        if self.context.runs < 2 || a.throughput.len() != b.throughput.len() {
            return "–".to_string();
        }
        a.throughput
            .iter()
            .zip(&b.throughput)
            .map(|(x, y)| format!("{:.2}", x / y))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What the sweep says about the batch size.
    fn batching_text(&self) -> String {
        let d = default_batch();
        let cpu_series = self.series(false, |case| self.cpu(case));
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| series | best (M fd/s) | at batch | smallest batch with ≥ 90% of best \
             | at {d}: % of best | throughput 253 ÷ {d} | CPU per fd at {d} (µs) \
             | at 253 (µs) | CPU {d} ÷ 253 |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        let mut shares = Vec::new();
        let mut cpu_ratios = Vec::new();
        let mut knees = Vec::new();
        for (name, points) in self.sweep_series() {
            let Some(&(best_batch, best)) = points.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
                continue;
            };
            let knee = points
                .iter()
                .find(|(_, v)| *v >= 0.9 * best)
                .map_or(best_batch, |(b, _)| *b);
            let at = |points: &[(usize, f64)], batch: usize| {
                points.iter().find(|(b, _)| *b == batch).map(|(_, v)| *v)
            };
            let cpu = cpu_series
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| p.as_slice())
                .unwrap_or_default();
            let (cpu_d, cpu_top) = (at(cpu, d), at(cpu, 253));
            let show_us =
                |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{:.2}", v / 1e3));
            let _ = writeln!(
                t,
                "| {name} | {:.3} | {best_batch} | {knee} | {} | {} | {} | {} | {} |",
                best / 1e6,
                at(&points, d).map_or_else(|| "–".into(), |v| format!("{:.0}%", 100.0 * v / best)),
                show_ratio(ratio(at(&points, 253), at(&points, d))),
                show_us(cpu_d),
                show_us(cpu_top),
                show_ratio(ratio(cpu_d, cpu_top)),
            );
            knees.push(knee);
            if let Some(v) = at(&points, d) {
                shares.push(v / best);
            }
            if let Some(r) = ratio(cpu_d, cpu_top) {
                cpu_ratios.push(r);
            }
        }
        if shares.is_empty() || cpu_ratios.is_empty() {
            return t;
        }
        let share = median(&shares);
        let cpu_ratio = median(&cpu_ratios);
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        };
        let (share_lo, share_hi) = range(&shares);
        let (cpu_lo, cpu_hi) = range(&cpu_ratios);
        let knee_lo = knees.iter().min().copied().unwrap_or(d);
        let knee_hi = knees.iter().max().copied().unwrap_or(d);
        let _ = writeln!(
            t,
            "\nAcross the raw loops and the adapters, throughput reaches 90% of its best at \
             {knee_lo} to {knee_hi} descriptors per message. At the default of {d} the series \
             reach {:.0}% to {:.0}% of their best throughput (median {:.0}%), and spend \
             {cpu_lo:.2}× to {cpu_hi:.2}× the CPU per descriptor they spend at 253 (median \
             {cpu_ratio:.2}×).",
            100.0 * share_lo,
            100.0 * share_hi,
            100.0 * share,
        );
        let verdict = if share >= 0.9 && cpu_ratio <= 1.10 {
            format!(
                "The data supports {d} as the sweet spot: it sits at the knee of the curve, \
                 and larger messages gain at most a few percent more, while a receiver may \
                 hold up to one message of descriptors it did not ask for yet and a sentinel \
                 passer reserves `max_fds_per_message + 1` slots."
            )
        } else if share < 0.85 || cpu_ratio > 1.15 {
            format!(
                "The data does **not** support {d} as the sweet spot: messages larger than \
                 {d} still pay off clearly here, which argues for a larger default (at the \
                 cost of more descriptors read ahead, up to one message, and, with the \
                 sentinel, more reserved slots)."
            )
        } else {
            format!(
                "The data puts {d} just below the knee: larger messages still gain a little \
                 (about {:.0}% less CPU per descriptor at 253, by the median), a gain to \
                 weigh against more descriptors read ahead (up to one message) and, with the \
                 sentinel, more reserved slots. The CPU columns depend least on how busy \
                 the machine was.",
                100.0 * (1.0 - 1.0 / cpu_ratio)
            )
        };
        let _ = writeln!(t, "{verdict}");
        t
    }

    fn targets_text(&self) -> String {
        let d = default_batch();
        let raw1 = self.raw_throughput(1);
        let raw253 = self.raw_throughput(253);
        let rtt = self.raw_round_trip();
        let mut t = String::new();
        t.push_str(
            "Each target is checked against both raw loops: plain `recvmsg` (the absolute \
             limit) and peek + consume (the same kernel work as fdpass's default peek \
             reservation); the sentinel reservation's targets against the plain loop \
             alone, whose kernel work it shares.\n\n",
        );
        t.push_str(
            "| target | case | vs raw plain | vs raw peek | verdict |\n|---|---|--:|--:|---|\n",
        );
        let mut row = |target: &str,
                       case: Case,
                       value: Option<f64>,
                       r: Reference,
                       min: f64,
                       at_most: bool| {
            let vs_plain = ratio(value, r.plain);
            let vs_peek = ratio(value, r.peek);
            let check = |x: Option<f64>| x.map(|x| if at_most { x <= min } else { x >= min });
            let (p, k) = (check(vs_plain), check(vs_peek));
            let verdict = match (p, k) {
                (Some(true), Some(true)) => "met".to_string(),
                (Some(false), Some(false)) => "**missed**".to_string(),
                (Some(true), Some(false)) => "met vs plain, **missed** vs peek".to_string(),
                (Some(false), Some(true)) => "met vs peek, **missed** vs plain".to_string(),
                (Some(met), None) => verdict(Some(met)).to_string(),
                _ => verdict(None).to_string(),
            };
            let _ = writeln!(
                t,
                "| {target} | {} | {} | {} | {verdict} |",
                case_name(case),
                show_ratio(vs_plain),
                show_ratio(vs_peek),
            );
        };
        for wire in [WireKind::Classic, WireKind::Native] {
            let core1 = Case::new(Imp::Core, 1, Recv::Peek).on(wire);
            row(
                "unbatched peek ≥ 0.70× raw 1/msg",
                core1,
                self.throughput(core1),
                raw1,
                0.70,
                false,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS[1..]) {
            let case = Case::new(imp, 1, Recv::Peek).on(wire);
            row(
                "unbatched peek ≥ 0.60× raw 1/msg",
                case,
                self.throughput(case),
                raw1,
                0.60,
                false,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Peek).on(wire);
            row(
                "batched ≥ 6× raw 1/msg",
                case,
                self.throughput(case),
                raw1,
                6.0,
                false,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Peek).on(wire);
            row(
                "batched ≥ 0.80× raw 253/msg",
                case,
                self.throughput(case),
                raw253,
                0.80,
                false,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Peek).on(wire);
            row(
                "round trip ≤ 1.5× raw",
                case,
                self.round_trip(case),
                rtt,
                1.5,
                true,
            );
        }
        let pinned = self.raw_round_trip_pinned();
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Peek).on(wire);
            row(
                "round trip ≤ 1.5× raw, on one processor",
                case,
                self.round_trip_pinned(case),
                pinned,
                1.5,
                true,
            );
        }
        // The sentinel reservation, at the default batch: what users get
        // where the peek reservation cannot work. Its kernel work is the
        // plain loop's, so it is judged against that alone.
        let plain_only = |r: Reference| Reference {
            plain: r.plain,
            peek: None,
        };
        let raw_cpu = Reference {
            plain: self.cpu(Case::new(Imp::Raw, d, Recv::Plain)),
            peek: None,
        };
        let (raw253, rtt, pinned) = (plain_only(raw253), plain_only(rtt), plain_only(pinned));
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Sentinel).on(wire);
            row(
                "sentinel batched ≥ 0.80× raw 253/msg",
                case,
                self.throughput(case),
                raw253,
                0.80,
                false,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Sentinel).on(wire);
            row(
                "sentinel CPU per fd ≤ 1.2× raw, same batch",
                case,
                self.cpu(case),
                raw_cpu,
                1.2,
                true,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Sentinel).on(wire);
            row(
                "sentinel round trip ≤ 1.5× raw",
                case,
                self.round_trip(case),
                rtt,
                1.5,
                true,
            );
        }
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            let case = Case::new(imp, d, Recv::Sentinel).on(wire);
            row(
                "sentinel round trip ≤ 1.5× raw, on one processor",
                case,
                self.round_trip_pinned(case),
                pinned,
                1.5,
                true,
            );
        }

        t.push_str(
            "\nThe main rows send each repetition with one `push_send_many` and receive in \
             bulk (`recv_many` in the async adapters; one request at a time and the rest of \
             each message with `try_recv` in fdpass-core and fdpass-mio). Two other idioms \
             have rows of their own, at the default batch size: *one at a time* calls \
             `push_send` once per descriptor and then awaits `flush()`, and receives one \
             descriptor per `recv()` (fdpass-mio: per event); each `push_send` writes at once \
             while the socket has room, so messages carry fewer descriptors than the batch \
             size allows and the receiver pays for more of them. *send()s queued* starts every \
             `send()` before awaiting any (the queue is deep before the first write, as with \
             `push_send_many`) and receives in bulk.\n",
        );
        t.push_str(&self.peers_text());
        t
    }

    /// The fdpass cases compared with every other crate, throughput and
    /// round trip.
    fn peers_text(&self) -> String {
        let d = default_batch();
        let peers: Vec<Case> = [
            Case::new(Imp::Sendfd, 1, Recv::Plain),
            Case::new(Imp::Sendfd, d, Recv::Plain),
            Case::new(Imp::Passfd, 1, Recv::Plain),
            Case::new(Imp::AsyncSendFd, 1, Recv::Plain),
        ]
        .into_iter()
        .filter(|c| self.by_case.contains_key(c))
        .collect();
        if peers.is_empty() {
            return String::new();
        }
        let mut ours = Vec::new();
        for (imp, wire) in both_wires(&Imp::FDPASS) {
            ours.push(Case::new(imp, 1, Recv::Peek).on(wire));
            ours.push(Case::new(imp, d, Recv::Peek).on(wire));
        }
        for (imp, wire) in both_wires(&Imp::OTHER_SENDERS) {
            ours.push(Case::new(imp, d, Recv::Peek).on(wire));
        }
        ours.retain(|c| self.by_case.contains_key(c));

        let mut t = String::new();
        t.push_str(
            "\nAhead of the other crates: throughput of each fdpass case divided by each \
             other crate's (above 1 is ahead). `sendfd` is measured both one descriptor per \
             call and with the application batching as many per call as fdpass's default \
             (the same work as fdpass's batched rows).\n\n| fdpass case |",
        );
        for p in &peers {
            let _ = write!(t, " ÷ {}, {}/msg |", p.imp.label(), p.batch);
        }
        t.push_str(" verdict |\n|---|");
        for _ in &peers {
            t.push_str("--:|");
        }
        t.push_str("---|\n");
        for case in &ours {
            let v = self.throughput(*case);
            let _ = write!(t, "| {} |", case_name(*case));
            let mut behind = Vec::new();
            for p in &peers {
                let r = ratio(v, self.throughput(*p));
                if r.is_some_and(|r| r <= 1.0) {
                    behind.push(format!("{} {}/msg", p.imp.id(), p.batch));
                }
                let _ = write!(t, " {} |", show_ratio(r));
            }
            if behind.is_empty() {
                t.push_str(" ahead of all |\n");
            } else {
                let _ = writeln!(t, " **behind** {} |", behind.join(", "));
            }
        }

        let with_rtt: Vec<Case> = peers
            .iter()
            .copied()
            .filter(|p| self.round_trip(*p).is_some())
            .collect();
        let ours: Vec<Case> = ours
            .into_iter()
            .filter(|c| self.round_trip(*c).is_some())
            .collect();
        if !with_rtt.is_empty() && !ours.is_empty() {
            t.push_str(
                "\nRound trips: each fdpass case's divided by each other crate's (below 1 is \
                 ahead).\n\n| fdpass case | round trip (µs) |",
            );
            for p in &with_rtt {
                let _ = write!(t, " ÷ {} |", p.imp.label());
            }
            t.push_str(" verdict |\n|---|--:|");
            for _ in &with_rtt {
                t.push_str("--:|");
            }
            t.push_str("---|\n");
            for case in &ours {
                let v = self.round_trip(*case);
                let _ = write!(
                    t,
                    "| {} | {:.1} |",
                    case_name(*case),
                    v.unwrap_or(0.0) * 1e6
                );
                let mut behind = Vec::new();
                for p in &with_rtt {
                    let r = ratio(v, self.round_trip(*p));
                    if r.is_some_and(|r| r >= 1.0) {
                        behind.push(p.imp.id());
                    }
                    let _ = write!(t, " {} |", show_ratio(r));
                }
                if behind.is_empty() {
                    t.push_str(" ahead of all |\n");
                } else {
                    let _ = writeln!(t, " **behind** {} |", behind.join(", "));
                }
            }
        }
        t
    }

    fn allocation_text(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| case | descriptors in the window | sender allocations | receiver allocations \
             | per descriptor (send / recv) |\n|---|--:|--:|--:|--:|\n",
        );
        for m in self
            .results
            .iter()
            .filter(|m| m.planned.case.imp.is_fdpass())
        {
            let a = m.allocations;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} / {} |",
                case_name(m.planned.case),
                a.descriptors,
                a.sender,
                a.receiver,
                show_per_fd(a.sender, a.descriptors),
                show_per_fd(a.receiver, a.descriptors),
            );
        }
        t
    }

    /// Which implementations allocated nothing, and where the others'
    /// allocations come from.
    fn allocation_summary(&self) -> String {
        let mut zero = Vec::new();
        let mut some = Vec::new();
        let mut worst: f64 = 0.0;
        let mut most: u64 = 0;
        for imp in Imp::FDPASS.into_iter().chain(Imp::OTHER_SENDERS) {
            let cases: Vec<&&Measured> = self
                .by_case
                .iter()
                .filter(|(c, _)| c.imp == imp)
                .map(|(_, m)| m)
                .collect();
            if cases.is_empty() {
                continue;
            }
            let mut total = 0;
            for m in &cases {
                let a = m.allocations;
                for count in [a.sender, a.receiver] {
                    total += count;
                    most = most.max(count);
                    worst = worst.max(count as f64 / a.descriptors.max(1) as f64);
                }
            }
            if total == 0 {
                zero.push(imp.label());
            } else {
                some.push(imp.label());
            }
        }
        let mut t = String::new();
        if !zero.is_empty() {
            let _ = writeln!(
                t,
                "\nNo allocation at all in the window, in either process, in any case of: {}.",
                zero.join("; ")
            );
        }
        if !some.is_empty() {
            let _ = writeln!(
                t,
                "\nSome allocations in: {}; at most {most} in one process's window, at most \
                 {worst:.1e} per descriptor. Their sources, found with valgrind's DHAT on \
                 single cases: with the multi-thread runtime, the task the benchmark spawns \
                 for each operation; with the *send()s queued* idiom, the vector of `send()` \
                 futures; with fdpass-tokio, tokio's cooperative scheduling (once a task has \
                 spent its budget of readiness checks, tokio defers its wake-up in a list it \
                 allocates afresh in each `block_on`, and the benchmark runs one `block_on` \
                 per chunk of a repetition); with fdpass-smol, async-io's reactor, which collects the wakers of \
                 each reactor turn into a new vector (`ReactorLock::react`); otherwise a queue \
                 of fdpass reaching a new high-water mark, when a repetition needs more room \
                 than any before it (a `--quick` run has no steady state at all). fdpass \
                 itself allocates nothing per descriptor once its queues have grown.",
                some.join("; ")
            );
        }
        t
    }

    fn idle_text(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| passer | passers in one process | descriptors per passer, socket included \
             | `held_descriptors()` per passer | heap bytes per passer \
             | heap total | resident bytes per passer | resident total |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for f in self.footprints {
            let label = match f.kind.as_str() {
                "core-peek" => "fdpass-core, peek (default)",
                "core-sentinel" => "fdpass-core, sentinel (default batch size)",
                "mio" => "fdpass-mio, peek",
                "tokio" => "fdpass-tokio, peek",
                "smol" => "fdpass-smol, peek",
                other => other,
            };
            let _ = writeln!(
                t,
                "| {label} | {} | {:.2} | {} | {:.0} | {:.2} MiB | {:.0} | {:.2} MiB |",
                thousands(f.passers),
                f.fds_per_passer,
                f.held.map_or_else(
                    || "–".to_string(),
                    |h| format!("{:.2}", h as f64 / f.passers as f64)
                ),
                f.heap_per_passer,
                f.heap_per_passer * f.passers as f64 / (1024.0 * 1024.0),
                f.rss_per_passer(),
                f.rss_total as f64 / (1024.0 * 1024.0),
            );
        }
        t
    }

    /// The whole of `docs/performance.md`.
    pub fn markdown(&self) -> String {
        let c = &self.context;
        let b = &c.budget;
        let mut t = String::new();
        t.push_str("# Performance\n\n");
        if c.quick {
            t.push_str(
                "> **A `--quick` run**: tiny repetitions that only prove the benchmark runs. \
                 These figures mean nothing; run the full benchmark for real ones.\n\n",
            );
        }
        let _ = writeln!(
            t,
            "Measured by `crates/fdpass-bench` in {} taking {:.0} s in all. The full \
             benchmark:\n\n\
             ```sh\ncargo run --release -p fdpass-bench\n```\n\n\
             measures every case in 3 whole runs (`-- --runs N` for another number), each \
             with fresh child processes, reports the median of the runs' figures, and \
             rewrites this file and `throughput-vs-batch.svg`; \
             `cargo run --release -p fdpass-bench -- --quick` runs every case for a few \
             seconds without writing here (for continuous integration: it proves the \
             benchmark still runs), and `-- --only core:native:` measures only the cases \
             whose name contains the text given (also without writing here).\n",
            if c.runs == 1 {
                "one run".to_string()
            } else {
                format!("{} runs", c.runs)
            },
            c.elapsed.as_secs_f64()
        );
        t.push_str("## Machine\n\n");
        let _ = writeln!(t, "{}", machine());
        let _ = writeln!(
            t,
            "The 1-minute load average was {} at the start of the measurements and {} at \
             their end, on {} processors{}. Absolute figures drift from run to run ({}); \
             the ratios compare cases measured in the same run, interleaved, and are the \
             figures to go by, with the CPU-per-descriptor columns, which depend least on \
             the machine's load.\n",
            c.load_before,
            load_average(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if c.load_before >= 0.5 {
                ": other work shared the machine throughout, which is why every figure is \
                 the median of several runs"
            } else {
                ""
            },
            if c.runs > 1 {
                format!(
                    "each figure is the median of {} runs, each run's figure the median of \
                     its {} repetitions; the spread column shows how much the runs disagreed",
                    c.runs, b.reps
                )
            } else {
                "the spread column shows how much the repetitions of the run disagreed".into()
            },
        );
        t.push_str("## What is measured\n\n");
        let _ = writeln!(
            t,
            "- Two processes joined by a `SOCK_STREAM` socketpair: the benchmark starts \
             itself again as the child and steers it over a pipe, so the socket carries \
             only the measured traffic. Both ends run the same implementation and settings.\n\
             - **Throughput** (one way): the parent sends descriptors, the child receives \
             them and closes each as it arrives. The descriptors are duplicates of one pipe \
             end, created before the clock starts, identically for every case; every sender \
             closes its copy once the kernel has it (fdpass does so itself). The clock runs \
             from the first send until the child reports, over the pipe, that it closed \
             the last one. One untimed warm-up sizes the repetitions to about {} ms each \
             ({} descriptors per repetition, depending on the case); {} timed repetitions, \
             the median is reported. Every case is started and warmed up first, then the \
             repetitions go round all the cases in turn, so that a busy stretch of the \
             machine touches every case alike.\n\
             - **Round trip**: one descriptor sent to the child and sent straight back, \
             {} times in a row per repetition, each round trip timed on its own; a \
             repetition's figure is its median round trip (a few slow wake-ups of an idle \
             processor do not set it), and the median of {} repetitions is reported. Each \
             repetition measures round trips twice: as the scheduler places the two \
             processes, and with both pinned to one processor (every thread of each, for \
             the duration of the round trips), where no processor has to wake up from idle \
             and the figure is the software's own cost.\n\
             - Senders hand over each repetition's descriptors in one `push_send_many`, then \
             wait until the kernel has them all (`flush().await`, or the `Sent` event): the \
             idiom for a sender with a deep queue. Receivers take them in bulk: `recv_many` \
             in the async adapters; one request at a time and the rest of each message with \
             `try_recv` in fdpass-core and fdpass-mio. Other idioms have rows of their own \
             (see below the targets; in the *one at a time* rows fdpass-mio keeps {} \
             requests outstanding and takes one event per descriptor).\n\
             - The raw loop is rustix `sendmsg`/`recvmsg` on blocking sockets: plain \
             `recvmsg` with `MSG_CMSG_CLOEXEC`, or `MSG_PEEK | MSG_CMSG_CLOEXEC` (which \
             installs copies) followed by a consuming `recvmsg` with no control buffer, the \
             kernel work of fdpass's peek reservation.\n\
             - The other crates are used as their documentation shows: `sendfd` 0.4 \
             (`SendWithFd`/`RecvWithFd` on a std `UnixStream`, blocking), `passfd` 0.1 \
             (`FdPassingExt`, blocking) and `async-send-fd` 1.2 (feature `tokio`, on a \
             current-thread runtime); all three build with the compiler above. Their senders \
             close each descriptor after sending it, as fdpass does (`async-send-fd` closes \
             it itself only when the socket's peer credentials name another process; a \
             socketpair's name its creator, so in that process the benchmark closes it).\n\
             - Every process of the benchmark raises its `RLIMIT_NOFILE` as far as it may \
             (to 1,048,576 where it may raise the hard limit, else to the hard limit): \
             {} here. The sender holds one chunk of pre-created descriptors at a time, up to \
             that limit less a margin; a repetition larger than a chunk is sent as several \
             timed chunks, each prepared untimed.\n",
            b.fds_time.as_millis(),
            range(self.results.iter().map(|m| m.fds_per_rep)),
            b.reps,
            range(
                self.results
                    .iter()
                    .map(|m| m.rounds_per_rep)
                    .filter(|&r| r > 0)
            ),
            b.reps,
            crate::endpoint::RECV_WINDOW,
            c.descriptor_limit,
        );
        t.push_str("## Results\n\n");
        t.push_str(&self.main_table());
        t.push_str(&format!(
            "\n`fds/msg` is `max_fds_per_message` for fdpass ({} is the default; the peek \
             reservation is what the default `Reservation::Auto` picks on Linux; on the \
             classic wire it is also the batch), the batch size for the raw loop and \
             `sendfd`. Spread is (max − min) / median over the repetitions. CPU per fd is \
             the CPU time each process used during a repetition (every thread, kernel \
             included) divided by its descriptors, sender + receiver: unlike throughput it \
             hardly depends on how busy the machine is, and the slower side bounds the \
             throughput. `× raw CPU` compares the sum with the raw loop doing the same \
             kernel work (same batch size; peek + consume for the peek reservation, plain \
             `recvmsg` otherwise). Allocations per descriptor: see below.\n\n",
            default_batch()
        ));
        t.push_str(
            "### Round trips

",
        );
        t.push_str(&self.round_trip_table());
        t.push_str(
            "\nOn two processors a round trip mostly measures how fast an idle processor \
             wakes up, which varies a lot on a shared or virtual machine (see the spread); \
             on one processor the two processes take turns without waking anything, and \
             the figure is what each implementation spends per round trip.\n\n",
        );
        t.push_str("## Messages and the native wire\n\n");
        t.push_str(&self.native_text());
        t.push_str("\n## Targets\n\n");
        t.push_str(&self.targets_text());
        t.push('\n');
        t.push_str(PROFILE_NOTES);
        t.push_str("\n## Batch size\n\n");
        t.push_str("![Throughput against descriptors per message](throughput-vs-batch.svg)\n\n");
        t.push_str(&self.sweep_tables());
        t.push('\n');
        t.push_str(&self.batching_text());
        t.push_str("\n## Allocations on the hot path\n\n");
        t.push_str(
            "The benchmark's `#[global_allocator]` wraps the system allocator and counts \
             every allocation and reallocation. Each process reads the count right before \
             and right after the timed window of the last throughput repetition, when the \
             warm-up and the earlier repetitions have already grown every queue and buffer \
             to its working size; the child reports its count over the pipe. The window \
             covers everything the process does in it: the passer, the adapter, the \
             runtime and the benchmark's own loop.\n\n",
        );
        t.push_str(&self.allocation_text());
        t.push_str(&self.allocation_summary());
        t.push_str("\n## Idle passers\n\n");
        t.push_str(
            "Each kind is measured in a fresh process: one pair is made first (so one-time \
             set-up such as a runtime or a reactor is not counted), then the passers, in \
             connected pairs, kept in one vector of their own type. Descriptors are counted \
             in `/proc/self/fd`, heap bytes with the counting allocator (the passer structs \
             included), resident memory from `VmRSS`. Kernel memory (the socket itself, \
             its epoll registration) is not included in either.\n\n",
        );
        t.push_str(&self.idle_text());
        if let Some(f) = self.footprints.iter().find(|f| f.kind == "core-peek") {
            let _ = writeln!(
                t,
                "\n{} idle `fdpass-core` passers with the default settings live in one process \
                 on {:.2} MiB of heap ({:.2} MiB resident) and {} descriptors: one socket \
                 each and nothing else. The sentinel reservation holds \
                 `max_fds_per_message + 1` descriptors besides the socket ({} at the \
                 default), so it is measured with fewer passers where the descriptor limit \
                 would not fit more.",
                thousands(f.passers),
                f.heap_per_passer * f.passers as f64 / (1024.0 * 1024.0),
                f.rss_total as f64 / (1024.0 * 1024.0),
                thousands((f.fds_per_passer * f.passers as f64).round() as usize),
                default_batch() + 1,
            );
        }
        t
    }
}

/// `n` with thousands separators.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let first = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = digits[..first].to_string();
    for chunk in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

/// "lo to hi" of the values, or the one value.
fn range(values: impl Iterator<Item = usize> + Clone) -> String {
    match (values.clone().min(), values.max()) {
        (Some(lo), Some(hi)) if lo < hi => format!("{lo} to {hi}"),
        (Some(lo), _) => lo.to_string(),
        _ => "–".to_string(),
    }
}

fn case_name(case: Case) -> String {
    let mut name = format!(
        "{}, {}/msg, {}",
        case.label(),
        case.batch,
        recv_label(case.recv)
    );
    if case.load != Load::Fds {
        let _ = write!(name, ", {}", case.load.label());
    }
    name
}

/// Each of `imps` on the classic wire, then each on the native wire.
fn both_wires(imps: &[Imp]) -> impl Iterator<Item = (Imp, WireKind)> + '_ {
    [WireKind::Classic, WireKind::Native]
        .into_iter()
        .flat_map(move |wire| imps.iter().map(move |&imp| (imp, wire)))
}

/// Processors, kernel, CPU model and memory of this machine.
fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let kib: f64 = s.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
    format!(
        "- processors (`nproc`): {nproc}\n- CPU: {cpu}\n- memory: {memory}\n\
         - kernel: Linux {kernel}\n- compiler: {rustc}\n- date: {} (UTC)\n",
        today()
    )
}

/// The 1-minute load average (0 where unknown).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Today's date, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
