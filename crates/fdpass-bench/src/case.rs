//! What is measured: an implementation, its wire, a batch size, a receive
//! strategy and what each item sent carries.

use std::fmt;

use fdpass_core::{Config, Reservation, Wire, SCM_MAX_FD};

/// The batch sizes of the sweep (descriptors per message).
pub const SWEEP: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 253];

/// Who does the passing, on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Imp {
    /// rustix `sendmsg`/`recvmsg` on blocking sockets: the limit.
    Raw,
    /// `fdpass_core::Passer` in a plain `poll(2)` loop.
    Core,
    /// `fdpass_tokio::Passer` on a current-thread runtime.
    TokioCt,
    /// `fdpass_tokio::Passer` on a multi-thread runtime (tasks on workers).
    TokioMt,
    /// `fdpass_mio::Passer` in a mio loop.
    Mio,
    /// `fdpass_smol::Passer` under `async_io::block_on`.
    Smol,
    /// As `TokioCt`, but the sender starts every `send()` before awaiting
    /// any, instead of one `push_send_many` and `flush`.
    TokioCtQueued,
    /// As `TokioMt`, sending like `TokioCtQueued`.
    TokioMtQueued,
    /// As `Smol`, sending like `TokioCtQueued`.
    SmolQueued,
    /// As `TokioCt`, but one descriptor per call at both ends: the sender
    /// calls `push_send` for each (written at once while the socket has
    /// room), then `flush`; the receiver awaits one `recv()` for each.
    TokioCtEach,
    /// As `TokioMt`, sending like `TokioCtEach`.
    TokioMtEach,
    /// As `Mio`, sending like `TokioCtEach`.
    MioEach,
    /// As `Smol`, sending like `TokioCtEach`.
    SmolEach,
    /// The `sendfd` crate, blocking.
    Sendfd,
    /// The `passfd` crate, blocking.
    Passfd,
    /// The `async-send-fd` crate on a current-thread tokio runtime.
    AsyncSendFd,
}

impl Imp {
    /// The fdpass implementations (the adapters and the core loop).
    pub const FDPASS: [Imp; 5] = [Imp::Core, Imp::TokioCt, Imp::TokioMt, Imp::Mio, Imp::Smol];

    /// The adapters again with other idioms: every `send()` started before
    /// any is awaited, or one descriptor per call at both ends.
    pub const OTHER_SENDERS: [Imp; 7] = [
        Imp::TokioCtQueued,
        Imp::TokioMtQueued,
        Imp::SmolQueued,
        Imp::TokioCtEach,
        Imp::TokioMtEach,
        Imp::MioEach,
        Imp::SmolEach,
    ];

    /// The other crates.
    pub const PEERS: [Imp; 3] = [Imp::Sendfd, Imp::Passfd, Imp::AsyncSendFd];

    pub fn id(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::Core => "core",
            Imp::TokioCt => "tokio-ct",
            Imp::TokioMt => "tokio-mt",
            Imp::Mio => "mio",
            Imp::Smol => "smol",
            Imp::TokioCtQueued => "tokio-ct-queued",
            Imp::TokioMtQueued => "tokio-mt-queued",
            Imp::SmolQueued => "smol-queued",
            Imp::TokioCtEach => "tokio-ct-each",
            Imp::TokioMtEach => "tokio-mt-each",
            Imp::MioEach => "mio-each",
            Imp::SmolEach => "smol-each",
            Imp::Sendfd => "sendfd",
            Imp::Passfd => "passfd",
            Imp::AsyncSendFd => "async-send-fd",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Imp::Raw => "raw rustix loop",
            Imp::Core => "fdpass-core, poll(2) loop",
            Imp::TokioCt => "fdpass-tokio, current-thread",
            Imp::TokioMt => "fdpass-tokio, multi-thread",
            Imp::Mio => "fdpass-mio",
            Imp::Smol => "fdpass-smol",
            Imp::TokioCtQueued => "fdpass-tokio, current-thread, send()s queued",
            Imp::TokioMtQueued => "fdpass-tokio, multi-thread, send()s queued",
            Imp::SmolQueued => "fdpass-smol, send()s queued",
            Imp::TokioCtEach => "fdpass-tokio, current-thread, one at a time",
            Imp::TokioMtEach => "fdpass-tokio, multi-thread, one at a time",
            Imp::MioEach => "fdpass-mio, one at a time",
            Imp::SmolEach => "fdpass-smol, one at a time",
            Imp::Sendfd => "sendfd 0.4 (blocking)",
            Imp::Passfd => "passfd 0.1 (blocking)",
            Imp::AsyncSendFd => "async-send-fd 1.2 (tokio)",
        }
    }

    fn from_id(id: &str) -> Option<Imp> {
        [Imp::Raw]
            .into_iter()
            .chain(Imp::FDPASS)
            .chain(Imp::OTHER_SENDERS)
            .chain(Imp::PEERS)
            .find(|imp| imp.id() == id)
    }

    pub fn is_fdpass(self) -> bool {
        Imp::FDPASS.contains(&self) || Imp::OTHER_SENDERS.contains(&self)
    }
}

/// How the receiving side makes room for and takes descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recv {
    /// One `recvmsg` that installs the descriptors (raw loop and other crates).
    Plain,
    /// `MSG_PEEK | MSG_CMSG_CLOEXEC`, then a consuming `recvmsg` without a
    /// control buffer (raw loop, and fdpass's `Reservation::Peek`).
    Peek,
    /// fdpass's `Reservation::Sentinel`: close the reserved slots, `recvmsg`,
    /// duplicate them again.
    Sentinel,
}

impl Recv {
    pub fn id(self) -> &'static str {
        match self {
            Recv::Plain => "plain",
            Recv::Peek => "peek",
            Recv::Sentinel => "sentinel",
        }
    }

    fn from_id(id: &str) -> Option<Recv> {
        [Recv::Plain, Recv::Peek, Recv::Sentinel]
            .into_iter()
            .find(|r| r.id() == id)
    }
}

/// Which bytes an fdpass case puts on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// Not fdpass: the raw loop and the other crates send their own bytes
    /// (one byte per descriptor, or the payload of a message case).
    Bare,
    /// `Wire::Classic { batch }`: one byte per descriptor, no framing.
    Classic,
    /// `Wire::Native`, the default: a frame header per message, after a
    /// hello each way.
    Native,
}

impl WireKind {
    pub fn id(self) -> &'static str {
        match self {
            WireKind::Bare => "bare",
            WireKind::Classic => "classic",
            WireKind::Native => "native",
        }
    }

    fn from_id(id: &str) -> Option<WireKind> {
        [WireKind::Bare, WireKind::Classic, WireKind::Native]
            .into_iter()
            .find(|w| w.id() == id)
    }
}

/// What each item of a throughput repetition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Load {
    /// One descriptor, nothing else: `push_send_many` and `recv_many`.
    Fds,
    /// A message of 64 payload bytes and one descriptor.
    Small,
    /// A message of 4 KiB of payload and no descriptor.
    Page,
}

impl Load {
    pub fn id(self) -> &'static str {
        match self {
            Load::Fds => "fds",
            Load::Small => "msg64+1",
            Load::Page => "msg4k",
        }
    }

    fn from_id(id: &str) -> Option<Load> {
        [Load::Fds, Load::Small, Load::Page]
            .into_iter()
            .find(|l| l.id() == id)
    }

    /// Payload bytes per item.
    pub fn payload_len(self) -> usize {
        match self {
            Load::Fds => 0,
            Load::Small => 64,
            Load::Page => 4096,
        }
    }

    /// Descriptors per item.
    pub fn fds(self) -> usize {
        match self {
            Load::Fds | Load::Small => 1,
            Load::Page => 0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Load::Fds => "1 descriptor",
            Load::Small => "64 B + 1 descriptor",
            Load::Page => "4 KiB, no descriptor",
        }
    }
}

/// One configuration measured: both processes run the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Case {
    pub imp: Imp,
    pub wire: WireKind,
    /// Descriptors per message at most (`max_fds_per_message` for fdpass,
    /// and the classic wire's batch); for the raw loop's message cases,
    /// messages per `sendmsg`.
    pub batch: usize,
    pub recv: Recv,
    pub load: Load,
}

impl Case {
    /// A descriptor-only case: for fdpass on the classic wire at `batch`
    /// (`Wire::Classic { batch }`), otherwise the implementation's own bytes.
    pub fn new(imp: Imp, batch: usize, recv: Recv) -> Case {
        let wire = if imp.is_fdpass() {
            WireKind::Classic
        } else {
            WireKind::Bare
        };
        Case {
            imp,
            wire,
            batch,
            recv,
            load: Load::Fds,
        }
    }

    /// A descriptor-only fdpass case on the native wire, `batch` per message.
    pub fn native(imp: Imp, batch: usize, recv: Recv) -> Case {
        Case {
            wire: WireKind::Native,
            ..Case::new(imp, batch, recv)
        }
    }

    /// The same case sending `load` instead of bare descriptors.
    pub fn with_load(self, load: Load) -> Case {
        Case { load, ..self }
    }

    /// The same case on `wire`.
    pub fn on(self, wire: WireKind) -> Case {
        Case { wire, ..self }
    }

    /// The fdpass settings of this case.
    pub fn config(&self) -> Config {
        let reservation = match self.recv {
            Recv::Sentinel => Reservation::Sentinel,
            _ => Reservation::Peek,
        };
        let wire = match self.wire {
            WireKind::Native => Wire::Native,
            WireKind::Classic | WireKind::Bare => Wire::Classic { batch: self.batch },
        };
        Config::default()
            .with_wire(wire)
            .with_max_fds_per_message(self.batch)
            .with_reservation(reservation)
    }

    /// The implementation and, for fdpass, its wire, for tables.
    pub fn label(&self) -> String {
        match self.wire {
            WireKind::Bare => self.imp.label().to_string(),
            wire => format!("{}, {}", self.imp.label(), wire.id()),
        }
    }

    /// Parses what [`Display`](fmt::Display) writes.
    pub fn parse(s: &str) -> Option<Case> {
        let mut parts = s.split(':');
        let imp = Imp::from_id(parts.next()?)?;
        let wire = WireKind::from_id(parts.next()?)?;
        let batch = parts.next()?.parse().ok()?;
        let recv = Recv::from_id(parts.next()?)?;
        let load = Load::from_id(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Case {
            imp,
            wire,
            batch,
            recv,
            load,
        })
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.imp.id(),
            self.wire.id(),
            self.batch,
            self.recv.id(),
            self.load.id()
        )
    }
}

/// A case and what to measure in it.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub case: Case,
    /// Also measure the ping-pong round trip.
    pub latency: bool,
}

/// Messages per `sendmsg` in the raw loop's batched 4 KiB case: 64 KiB, as
/// much as one native `sendmsg` of fdpass's default payload limit carries.
pub const PAGES_PER_SEND: usize = 16;

/// Every case of a run, in the order they are measured.
pub fn plan(quick: bool) -> Vec<Planned> {
    let default_batch = Config::default().max_fds_per_message;
    let mut sweep = if quick {
        vec![1, default_batch, SCM_MAX_FD]
    } else {
        SWEEP.to_vec()
    };
    // The native wire at the headline sizes in every adapter, and the whole
    // sweep in fdpass-core.
    let mut native_sweep = vec![1, default_batch, SCM_MAX_FD];
    let mut sentinel = vec![1, 8, default_batch];
    for sizes in [&mut sweep, &mut native_sweep, &mut sentinel] {
        sizes.sort_unstable();
        sizes.dedup();
    }
    let mut plan = Vec::new();
    let mut add = |case: Case, latency: bool| plan.push(Planned { case, latency });
    for recv in [Recv::Plain, Recv::Peek] {
        for &batch in &sweep {
            add(Case::new(Imp::Raw, batch, recv), batch == 1);
        }
    }
    for imp in Imp::FDPASS {
        for wire in [WireKind::Classic, WireKind::Native] {
            let sizes = if wire == WireKind::Native && imp != Imp::Core {
                &native_sweep
            } else {
                &sweep
            };
            for &batch in sizes {
                add(
                    Case::new(imp, batch, Recv::Peek).on(wire),
                    batch == default_batch,
                );
            }
            for &batch in &sentinel {
                add(
                    Case::new(imp, batch, Recv::Sentinel).on(wire),
                    batch == 1 || batch == default_batch,
                );
            }
        }
    }
    for imp in Imp::OTHER_SENDERS {
        add(Case::new(imp, default_batch, Recv::Peek), false);
        add(Case::native(imp, default_batch, Recv::Peek), false);
    }
    add(Case::new(Imp::Sendfd, 1, Recv::Plain), true);
    add(Case::new(Imp::Sendfd, default_batch, Recv::Plain), false);
    add(Case::new(Imp::Passfd, 1, Recv::Plain), true);
    add(Case::new(Imp::AsyncSendFd, 1, Recv::Plain), true);
    for case in message_cases() {
        add(case, false);
    }
    plan
}

/// The message cases: fdpass-core on the native wire with its default
/// settings, and the raw loop sending the same payload bytes (and
/// descriptor) one message per `sendmsg` and batched as fdpass batches them.
pub fn message_cases() -> Vec<Case> {
    let d = Config::default().max_fds_per_message;
    vec![
        Case::new(Imp::Raw, 1, Recv::Plain).with_load(Load::Small),
        Case::new(Imp::Raw, d, Recv::Plain).with_load(Load::Small),
        Case::new(Imp::Raw, d, Recv::Peek).with_load(Load::Small),
        Case::native(Imp::Core, d, Recv::Peek).with_load(Load::Small),
        Case::new(Imp::Raw, 1, Recv::Plain).with_load(Load::Page),
        Case::new(Imp::Raw, PAGES_PER_SEND, Recv::Plain).with_load(Load::Page),
        Case::native(Imp::Core, d, Recv::Peek).with_load(Load::Page),
    ]
}
