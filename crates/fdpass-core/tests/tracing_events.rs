//! The `tracing` feature's events, captured by a minimal subscriber written
//! here (a `Vec` of level, message and fields; no formatting crate needed):
//! each full-table episode logs its start once and its end with how long it
//! lasted, at the level docs/design.md documents; a protocol error, a
//! failure and the peer's close log one event each; plain traffic logs
//! nothing above `TRACE`.
//!
//! `cargo test --workspace` builds fdpass-core with the feature (the
//! conformance crate turns it on); `cargo test -p fdpass-core --features
//! tracing` runs this file alone.
// Linux and Android only as well: the simulated kernel it uses for send
// back-pressure hands out memfds.
#![cfg(all(feature = "tracing", any(target_os = "linux", target_os = "android")))]

mod common;
mod support;

use std::fmt::Debug;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{drive, numbered_pipe, read_number, results, self_command};
use fdpass_core::{Config, Event, Passer, Reservation};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use support::{Fake, SendStep, Side, RETRY};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One captured event.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    /// Every other field, `name=value` with the value's `Debug` form.
    fields: Vec<String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }
}

/// A subscriber that keeps every event and ignores spans.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Captured>>>);

impl Recorder {
    /// Runs `f` with this recorder as the thread's subscriber.
    fn capture<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::subscriber::with_default(self.clone(), f)
    }

    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0.message = format!("{value:?}");
        } else {
            self.0.fields.push(format!("{}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut captured = Captured {
            level: *event.metadata().level(),
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut Fields(&mut captured));
        self.0.lock().unwrap().push(captured);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Events above `TRACE`.
fn above_trace(events: &[Captured]) -> Vec<&Captured> {
    events.iter().filter(|e| e.level != Level::TRACE).collect()
}

#[test]
fn traffic_logs_nothing_above_trace() {
    let recorder = Recorder::default();
    recorder.capture(|| {
        let (mut a, mut b) = Passer::pair(Config::default().with_max_fds_per_message(2)).unwrap();
        a.push_send_many((0..5).map(numbered_pipe)).unwrap();
        for _ in 0..5 {
            b.push_recv().unwrap();
        }
        let mut received = 0;
        drive(&mut [&mut a, &mut b], |_, events| {
            for (_, event) in events {
                if let Event::Received(_, fd) = event {
                    read_number(fd);
                    received += 1;
                }
            }
            received == 5
        });
    });
    let events = recorder.take();
    assert!(above_trace(&events).is_empty(), "{events:#?}");
}

#[test]
fn a_protocol_error_logs_one_warning() {
    let recorder = Recorder::default();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    recorder.capture(|| {
        // The classic wire: bytes without descriptors break it.
        let classic = Config::default().with_wire(fdpass_core::Wire::CLASSIC);
        let mut passer = Passer::new(ours.into(), classic).unwrap();
        theirs.write_all(b"not a descriptor stream").unwrap();
        passer.push_recv().unwrap();
        passer.handle_readable(Instant::now());
        assert!(matches!(passer.poll_event(), Some(Event::Failed(_))));
        // Later calls repeat the error without logging it again.
        assert!(passer.push_recv().is_err());
    });
    let events = recorder.take();
    let logged = above_trace(&events);
    assert_eq!(logged.len(), 1, "{events:#?}");
    let event = logged[0];
    assert_eq!(event.level, Level::WARN);
    assert!(
        event.message.contains("broke the descriptor protocol"),
        "{event:?}"
    );
    let error = event.field("error").expect("an error field");
    assert!(error.contains("not speaking this protocol"), "{event:?}");
    assert!(event.field("socket").is_some(), "{event:?}");
}

#[test]
fn a_peer_close_logs_at_debug_and_a_failed_send_warns() {
    let recorder = Recorder::default();
    recorder.capture(|| {
        let (mut a, b) = Passer::pair(Config::default()).unwrap();
        a.watch_hangup(true);
        drop(b);
        a.handle_readable(Instant::now());
        assert!(matches!(a.poll_event(), Some(Event::Closed)));
        // Sending to the departed peer fails (EPIPE).
        a.push_send(numbered_pipe(0)).unwrap();
        a.handle_writable(Instant::now());
        assert!(matches!(a.poll_event(), Some(Event::SendFailed(_))));
    });
    let events = recorder.take();
    let logged = above_trace(&events);
    assert_eq!(logged.len(), 2, "{events:#?}");
    assert_eq!(logged[0].level, Level::DEBUG);
    assert!(logged[0].message.contains("peer closed"), "{:?}", logged[0]);
    assert_eq!(logged[1].level, Level::WARN);
    assert!(
        logged[1].message.contains("sending failed"),
        "{:?}",
        logged[1]
    );
    assert!(logged[1].field("error").is_some(), "{:?}", logged[1]);
}

/// Send back-pressure refused twice in a row (`ETOOMANYREFS`, then
/// `ENOBUFS`, scripted on the simulated kernel): one `DEBUG` event at the
/// start naming the first errno, one at the end with the episode's length.
#[test]
fn send_backpressure_logs_its_start_once_and_its_end() {
    let recorder = Recorder::default();
    let fake = Fake::new("send_backpressure_logs_its_start_once_and_its_end");
    recorder.capture(|| {
        let config = support::config(Reservation::Peek, 2);
        let mut a = fake.passer(Side::A, config).unwrap();
        a.push_send(fake.numbered(Side::A)).unwrap();
        fake.on_send(Side::A, SendStep::Fail(Errno::TOOMANYREFS));
        fake.on_send(Side::A, SendStep::Fail(Errno::NOBUFS));
        let t0 = Instant::now();
        a.handle_writable(t0);
        let t1 = t0 + RETRY.initial;
        a.handle_timeout(t1);
        a.handle_writable(t1);
        let t2 = t1 + RETRY.initial * 2;
        a.handle_timeout(t2);
        a.handle_writable(t2);
        assert!(matches!(a.poll_event(), Some(Event::Sent(_))));
        drop(a);
    });
    let events = recorder.take();
    let logged = above_trace(&events);
    assert_eq!(logged.len(), 2, "{events:#?}");
    assert_eq!(logged[0].level, Level::DEBUG);
    assert!(
        logged[0].message.starts_with("send back-pressure:"),
        "{:?}",
        logged[0]
    );
    let errno = Errno::TOOMANYREFS.raw_os_error().to_string();
    assert_eq!(
        logged[0].field("errno"),
        Some(errno.as_str()),
        "{:?}",
        logged[0]
    );
    assert_eq!(logged[1].level, Level::DEBUG);
    assert!(
        logged[1].message.starts_with("send back-pressure over"),
        "{:?}",
        logged[1]
    );
    let waited = (RETRY.initial * 3).as_secs_f64();
    assert_eq!(
        logged[1].field("waited_secs"),
        Some(format!("{waited:?}").as_str())
    );
    fake.finish();
}

/// Two full-table episodes in a child with a lowered `RLIMIT_NOFILE`, each
/// retried while still full: one of two seconds of the driver's clock (ends
/// at `INFO`: a long stall), one of 10 ms (ends at `DEBUG`). Each logs one
/// start and one end, whatever the number of retries.
#[test]
fn a_full_table_episode_logs_its_start_and_its_end_with_its_length() {
    const NAME: &str = "a_full_table_episode_logs_its_start_and_its_end_with_its_length";
    if common::role().as_deref() == Some("stalled") {
        let recorder = Recorder::default();
        recorder.capture(two_stalls);
        let logged: Vec<String> = above_trace(&recorder.take())
            .iter()
            .map(|e| {
                let waited = e.field("waited_secs").unwrap_or("-");
                format!("{}:{}:{}", e.level, waited, e.message.replace(' ', "_"))
            })
            .collect();
        println!("RESULT {}", logged.join(" "));
        return;
    }
    let output = self_command(NAME, "stalled").output().unwrap();
    let line = results(&output).swap_remove(0);
    let logged: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(logged.len(), 4, "{line}");
    let start = "DEBUG:-:descriptor_table_full";
    assert!(logged[0].starts_with(start), "{line}");
    assert!(
        logged[1].starts_with("INFO:2.0:descriptor_table_has_room_again"),
        "{line}"
    );
    assert!(logged[2].starts_with(start), "{line}");
    assert!(
        logged[3].starts_with("DEBUG:0.01:descriptor_table_has_room_again"),
        "{line}"
    );
}

/// Child side of the test above.
fn two_stalls() {
    let config = Config::default().with_reservation(Reservation::Peek);
    let (mut sender, mut receiver) = Passer::pair(config).unwrap();
    limit_table();
    let mut now = Instant::now();
    for (number, length) in [(1, Duration::from_secs(2)), (2, Duration::from_millis(10))] {
        sender.push_send(numbered_pipe(number)).unwrap();
        sender.handle_writable(now);
        assert!(matches!(sender.poll_event(), Some(Event::Sent(_))));

        let fillers = fill_table();
        receiver.push_recv().unwrap();
        receiver.handle_readable(now);
        assert!(receiver.stats().is_stalled());
        // A retry while still full: the same episode, no new event.
        let retry = now + length / 2;
        receiver.handle_timeout(retry);
        receiver.handle_readable(retry);
        assert!(receiver.poll_event().is_none());

        drop(fillers);
        now += length;
        receiver.handle_timeout(now);
        receiver.handle_readable(now);
        let Some(Event::Received(_, fd)) = receiver.poll_event() else {
            panic!("the descriptor did not arrive once there was room");
        };
        assert_eq!(read_number(fd), number);
    }
}

/// Lowers this process's descriptor limit: small enough to fill in a moment,
/// large enough that freeing the fillers leaves the peek strategy's probe
/// room.
fn limit_table() {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: hard,
        },
    )
    .unwrap();
}

/// Opens /dev/null until the table is full (`EMFILE`).
fn fill_table() -> Vec<OwnedFd> {
    let mut fillers = Vec::new();
    loop {
        match rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fillers.push(fd),
            Err(Errno::MFILE) => return fillers,
            Err(Errno::INTR) => {}
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}
