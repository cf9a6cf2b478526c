//! Passers on real sockets, driven with poll(2): volume and order, both
//! reservation strategies, `SOCK_SEQPACKET`, listeners, orderly close,
//! descriptor flags, and (in a child process) descriptor leaks.

mod common;

use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use common::{drive, numbered_pipe, open_descriptors, read_number, TempDir};
use fdpass_core::socket::{connect, Listener};
use fdpass_core::{Config, Error, Event, Passer, ProtocolError, PushError, Reservation};
use rustix::fs::OFlags;
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// `SOCK_CLOEXEC`; macOS has no such flag (see [`cloexec_on_macos`]).
#[cfg(not(target_vendor = "apple"))]
const CLOEXEC: SocketFlags = SocketFlags::CLOEXEC;
#[cfg(target_vendor = "apple")]
const CLOEXEC: SocketFlags = SocketFlags::empty();

/// On macOS, sets `FD_CLOEXEC` right after creation (not atomic there);
/// elsewhere the socket already has it.
fn cloexec_on_macos(fd: std::os::fd::OwnedFd) -> std::os::fd::OwnedFd {
    if cfg!(target_vendor = "apple") {
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).unwrap();
    }
    fd
}

fn config(reservation: Reservation, max: usize) -> Config {
    Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max)
}

/// Two passers that have read each other's hello, so that from their first
/// push on they batch up to the peer's limit (before a hello arrives, a
/// native sender puts one descriptor in each message).
fn pair_after_hellos(config: Config) -> (Passer, Passer) {
    let (mut a, mut b) = Passer::pair(config).unwrap();
    let now = Instant::now();
    a.handle_writable(now);
    b.handle_writable(now);
    a.handle_readable(now);
    b.handle_readable(now);
    assert!(a.peer_limits().is_some() && b.peer_limits().is_some());
    (a, b)
}

/// Serialises the tests that keep hundreds of descriptors open at once.
/// Every test thread shares this process's descriptor table, and several such
/// tests side by side would outgrow a common soft limit of 1024 on a machine
/// with many cores (where the harness runs that many tests at once).
fn many_descriptors() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one direction of a [`transfer`] saw.
#[derive(Debug, Default, Clone, Copy)]
struct Direction {
    pushed: u64,
    received: u64,
    last_sent: Option<u64>,
    sent_events: u64,
    largest_batch: u64,
}

/// The numbers of direction `d` start here, so that a descriptor that went
/// the wrong way would be noticed.
fn base(d: usize) -> u64 {
    (d as u64) << 32
}

/// Passes `counts[0]` numbered pipes from `a` to `b` and `counts[1]` from `b`
/// to `a`, both at once, with at most `window` per direction pushed and not
/// yet received. Asserts that each arrives exactly once, in order, with
/// receive tokens in request order and `Sent` tokens growing by whole batches
/// of at most `max_fds_per_message`.
fn transfer(a: &mut Passer, b: &mut Passer, counts: [u64; 2], window: u64) -> [Direction; 2] {
    let max = [
        a.config().max_fds_per_message,
        b.config().max_fds_per_message,
    ];
    let mut dirs = [Direction::default(); 2];
    drive(&mut [&mut *a, &mut *b], |passers, events| {
        for (i, event) in events {
            match event {
                Event::Sent(token) => {
                    let dir = &mut dirs[i];
                    let first = dir.last_sent.map_or(0, |last| last + 1);
                    assert!(token.0 >= first, "Sent token went backwards");
                    let batch = token.0 + 1 - first;
                    assert!(batch <= max[i] as u64, "a batch of {batch} > {}", max[i]);
                    dir.largest_batch = dir.largest_batch.max(batch);
                    dir.last_sent = Some(token.0);
                    dir.sent_events += 1;
                }
                Event::Received(token, fd) => {
                    let d = 1 - i;
                    let dir = &mut dirs[d];
                    assert_eq!(token.0, dir.received, "receive tokens out of order");
                    assert_eq!(
                        read_number(fd),
                        base(d) + dir.received,
                        "descriptor out of order"
                    );
                    dir.received += 1;
                }
                other => panic!("unexpected event from passer {i}: {other:?}"),
            }
        }
        for (d, dir) in dirs.iter_mut().enumerate() {
            while dir.pushed < counts[d] && dir.pushed - dir.received < window {
                passers[d]
                    .push_send(numbered_pipe(base(d) + dir.pushed))
                    .expect("push_send");
                passers[1 - d].push_recv().expect("push_recv");
                dir.pushed += 1;
            }
        }
        dirs.iter().zip(counts).all(|(dir, count)| {
            dir.received == count && (count == 0 || dir.last_sent == Some(count - 1))
        })
    });
    for (d, passer) in [&*a, &*b].into_iter().enumerate() {
        assert_eq!(passer.queued_sends(), 0, "passer {d} still queues sends");
        assert_eq!(passer.outstanding_recvs(), 0, "passer {d} still waits");
    }
    dirs
}

/// How many descriptors an idle passer holds: the sentinel reservation's
/// slots and their origin, nothing for peek.
fn idle_holding(config: Config) -> usize {
    match config.reservation {
        Reservation::Sentinel => config.max_fds_per_message + 1,
        _ => 0,
    }
}

const MANY: u64 = 10_000;

/// 10,000 descriptors one way through a socketpair, in order; batches as
/// large as allowed and no larger.
fn ten_thousand(config: Config) {
    let _lock = many_descriptors();
    let started = Instant::now();
    let (mut a, mut b) = Passer::pair(config).unwrap();
    let max = config.max_fds_per_message as u64;
    let [dir, _] = transfer(&mut a, &mut b, [MANY, 0], max + 64);
    assert_eq!(dir.received, MANY);
    assert_eq!(
        dir.largest_batch, max,
        "the sender should fill whole messages"
    );
    if max == 1 {
        assert_eq!(dir.sent_events, MANY, "one message per descriptor");
    } else {
        assert!(dir.sent_events < MANY, "batched sends need fewer messages");
    }
    assert_eq!(a.held_descriptors(), idle_holding(config));
    assert_eq!(b.held_descriptors(), idle_holding(config));
    eprintln!("{config:?}: {MANY} descriptors in {:?}", started.elapsed());
}

#[test]
fn ten_thousand_peek_unbatched() {
    ten_thousand(config(Reservation::Peek, 1));
}

#[test]
fn ten_thousand_peek_batched_64() {
    ten_thousand(config(Reservation::Peek, 64));
}

#[test]
fn ten_thousand_peek_batched_253() {
    ten_thousand(config(Reservation::Peek, 253));
}

#[test]
fn ten_thousand_sentinel_unbatched() {
    ten_thousand(config(Reservation::Sentinel, 1));
}

#[test]
fn ten_thousand_sentinel_batched_8() {
    ten_thousand(config(Reservation::Sentinel, 8));
}

#[test]
fn ten_thousand_sentinel_batched_64() {
    ten_thousand(config(Reservation::Sentinel, 64));
}

#[test]
fn ten_thousand_sentinel_batched_253() {
    ten_thousand(config(Reservation::Sentinel, 253));
}

/// `SOCK_SEQPACKET` keeps message boundaries: each peek and each discard must
/// stay within one record.
fn seqpacket(config: Config) {
    let _lock = many_descriptors();
    let (x, y) =
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, CLOEXEC, None).unwrap();
    let (x, y) = (cloexec_on_macos(x), cloexec_on_macos(y));
    let mut a = Passer::new(x, config).unwrap();
    let mut b = Passer::new(y, config).unwrap();
    let max = config.max_fds_per_message as u64;
    let dirs = transfer(&mut a, &mut b, [2_000, 2_000], max + 64);
    for dir in dirs {
        assert_eq!(dir.received, 2_000);
        assert_eq!(dir.largest_batch, max);
    }
}

#[test]
fn seqpacket_peek() {
    seqpacket(config(Reservation::Peek, 64));
}

#[test]
fn seqpacket_peek_unbatched() {
    seqpacket(config(Reservation::Peek, 1));
}

#[test]
fn seqpacket_sentinel() {
    seqpacket(config(Reservation::Sentinel, 8));
}

// ---- listeners ----

#[test]
fn listener_connect_accept_passes_both_ways() {
    let dir = TempDir::new("both-ways");
    let listener = Listener::bind(dir.path().join("sock")).unwrap();
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let config = config(reservation, 16);
        // A connection per passer pair: dropping a passer ends its
        // connection, for every copy of the socket.
        let client = connect(listener.path()).unwrap();
        // A Unix-domain connect returns once the connection is queued, so it
        // waits for accept already.
        let server = listener.accept().unwrap();
        let mut a = Passer::new(client, config).unwrap();
        let mut b = Passer::new(server, config).unwrap();
        let dirs = transfer(&mut a, &mut b, [100, 100], 32);
        assert_eq!([dirs[0].received, dirs[1].received], [100, 100]);
    }
}

#[test]
fn listener_socket_file_is_private_by_default() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = TempDir::new("mode");
    let listener = Listener::bind(dir.path().join("sock")).unwrap();
    let meta = std::fs::symlink_metadata(listener.path()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The private staging directory used for binding is gone.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sock"]);
}

#[test]
fn listener_replaces_a_stale_socket_file() {
    let dir = TempDir::new("stale");
    let path = dir.path().join("sock");
    // A socket file nobody listens on, as a dead listener leaves behind. It
    // is bound and never listened on, rather than a dropped listener: a
    // process that another test thread is spawning holds a copy of every
    // descriptor until its exec, which can keep a dropped listener alive for
    // a moment.
    let unlistened = cloexec_on_macos(
        rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, CLOEXEC, None).unwrap(),
    );
    rustix::net::bind(&unlistened, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    let refused = connect(&path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let listener = Listener::bind(&path).unwrap();
    let client = connect(&path).unwrap();
    let server = listener.accept().unwrap();
    let config = Config::default();
    let mut a = Passer::new(client, config).unwrap();
    let mut b = Passer::new(server, config).unwrap();
    transfer(&mut a, &mut b, [3, 3], 8);
}

#[test]
fn listener_refuses_a_live_path() {
    let dir = TempDir::new("live");
    let path = dir.path().join("sock");
    let listener = Listener::bind(&path).unwrap();
    let err = Listener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    // The first listener is untouched and still serves. The refusal found it
    // alive by connecting, so that probe connection waits in the backlog
    // ahead of ours: take the newest.
    let client = connect(&path).unwrap();
    let mut server = None;
    loop {
        match listener.accept() {
            Ok(socket) => server = Some(socket),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("accept: {e}"),
        }
    }
    let mut a = Passer::new(client, Config::default()).unwrap();
    let mut b = Passer::new(server.expect("our connection"), Config::default()).unwrap();
    transfer(&mut a, &mut b, [2, 2], 8);
}

// ---- orderly close ----

/// Drives until `a` has sent the `n` descriptors pushed before.
fn finish_sending(a: &mut Passer, n: u64) {
    drive(&mut [a], |_, events| {
        let mut done = false;
        for (_, event) in events {
            match event {
                Event::Sent(token) => done = token.0 + 1 == n,
                other => panic!("unexpected event: {other:?}"),
            }
        }
        done
    });
}

/// Drives `b` until the peer's close is seen; returns the numbers received
/// before it. Panics on anything but `Received` and a final `Closed`.
fn receive_until_closed(b: &mut Passer) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut closed = false;
    drive(&mut [b], |_, events| {
        for (_, event) in events {
            assert!(!closed, "event after Closed: {event:?}");
            match event {
                Event::Received(_, fd) => numbers.push(read_number(fd)),
                Event::Closed => closed = true,
                other => panic!("expected Received or Closed, got {other:?}"),
            }
        }
        closed
    });
    numbers
}

fn peer_drop_is_closed_not_failed(config: Config) {
    let (mut a, mut b) = Passer::pair(config).unwrap();
    for n in 0..3 {
        a.push_send(numbered_pipe(n)).unwrap();
    }
    for _ in 0..5 {
        b.push_recv().unwrap();
    }
    finish_sending(&mut a, 3);
    drop(a);
    assert_eq!(receive_until_closed(&mut b), [0, 1, 2]);
    assert!(b.is_peer_closed());
    assert_eq!(b.outstanding_recvs(), 0, "requests end with the stream");
    assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
    // An orderly close is no failure: the passer itself stays usable.
    assert!(b.usable().is_ok());
    assert_eq!(b.held_descriptors(), idle_holding(config));
}

#[test]
fn peer_drop_is_closed_not_failed_peek() {
    peer_drop_is_closed_not_failed(config(Reservation::Peek, 64));
}

#[test]
fn peer_drop_is_closed_not_failed_sentinel() {
    peer_drop_is_closed_not_failed(config(Reservation::Sentinel, 1));
}

/// Descriptors read ahead before the peer closed are still handed out;
/// `PeerClosed` comes only after the last of them.
fn read_ahead_survives_peer_close(config: Config) {
    let (mut a, mut b) = pair_after_hellos(config);
    for n in 0..4 {
        a.push_send(numbered_pipe(n)).unwrap();
    }
    b.push_recv().unwrap();
    finish_sending(&mut a, 4);
    drop(a);
    let mut first = None;
    drive(&mut [&mut b], |_, events| {
        for (_, event) in events {
            match event {
                Event::Received(_, fd) => first = Some(read_number(fd)),
                other => panic!("unexpected event: {other:?}"),
            }
        }
        first.is_some()
    });
    assert_eq!(first, Some(0));
    // One message brought all four: three wait for requests.
    assert_eq!(b.held_descriptors(), 3 + idle_holding(config));
    for n in 1..4 {
        b.push_recv().unwrap();
        match b.poll_event() {
            Some(Event::Received(_, fd)) => assert_eq!(read_number(fd), n),
            other => panic!("expected a read-ahead descriptor, got {other:?}"),
        }
    }
    b.push_recv().unwrap();
    assert!(receive_until_closed(&mut b).is_empty());
    assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
}

#[test]
fn read_ahead_survives_peer_close_peek() {
    read_ahead_survives_peer_close(config(Reservation::Peek, 64));
}

#[test]
fn read_ahead_survives_peer_close_sentinel() {
    read_ahead_survives_peer_close(config(Reservation::Sentinel, 8));
}

#[test]
fn local_close_reaches_the_peer_as_closed() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let (mut a, mut b) = Passer::pair(config(reservation, 4)).unwrap();
        a.push_send(numbered_pipe(7)).unwrap();
        b.push_recv().unwrap();
        b.push_recv().unwrap();
        finish_sending(&mut a, 1);
        // The socket stays open (close only shuts it down), and the peer
        // still sees the end of the stream after what was sent.
        a.close();
        assert_eq!(receive_until_closed(&mut b), [7]);
        assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
        assert!(matches!(a.push_recv(), Err(Error::Closed)));
    }
}

// ---- descriptor flags ----

#[test]
fn received_descriptors_are_cloexec_and_keep_o_nonblock() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let (mut a, mut b) = Passer::pair(config(reservation, 4)).unwrap();
        // O_NONBLOCK belongs to the open file description, which is shared
        // with the receiver; close-on-exec belongs to a descriptor-table
        // entry and never travels, so the receiver's must come from
        // MSG_CMSG_CLOEXEC.
        let nonblocking = numbered_pipe(1);
        let flags = rustix::fs::fcntl_getfl(&nonblocking).unwrap();
        rustix::fs::fcntl_setfl(&nonblocking, flags | OFlags::NONBLOCK).unwrap();
        let blocking = numbered_pipe(2);
        rustix::io::fcntl_setfd(&blocking, FdFlags::empty()).unwrap();
        a.push_send(nonblocking).unwrap();
        a.push_send(blocking).unwrap();
        b.push_recv().unwrap();
        b.push_recv().unwrap();
        let mut got: Vec<OwnedFd> = Vec::new();
        drive(&mut [&mut a, &mut b], |_, events| {
            for (_, event) in events {
                match event {
                    Event::Sent(_) => {}
                    Event::Received(_, fd) => got.push(fd),
                    other => panic!("unexpected event: {other:?}"),
                }
            }
            got.len() == 2
        });
        for fd in &got {
            let fd_flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(fd_flags.contains(FdFlags::CLOEXEC), "{reservation:?}");
        }
        let status = |fd: &OwnedFd| rustix::fs::fcntl_getfl(fd).unwrap();
        assert!(status(&got[0]).contains(OFlags::NONBLOCK));
        assert!(!status(&got[1]).contains(OFlags::NONBLOCK));
        let numbers: Vec<u64> = got.into_iter().map(read_number).collect();
        assert_eq!(numbers, [1, 2]);
    }
}

// ---- leaks ----

/// Every path that opens, holds or closes descriptors, with the process's
/// descriptor count compared before and after. Runs alone in a child process
/// so that no other test thread changes the count meanwhile.
#[test]
fn no_descriptor_leaks() {
    const NAME: &str = "no_descriptor_leaks";
    if common::role().as_deref() == Some("leak-check") {
        let baseline = open_descriptors();
        // The count moves with what is open: two more for a pipe.
        let pipe = rustix::pipe::pipe().unwrap();
        assert_eq!(open_descriptors(), baseline + 2);
        drop(pipe);
        assert_eq!(open_descriptors(), baseline);

        for reservation in [Reservation::Peek, Reservation::Sentinel] {
            leak_scenarios(reservation);
            assert_eq!(
                open_descriptors(),
                baseline,
                "descriptors leaked with {reservation:?}"
            );
        }
        listener_scenarios();
        let after = open_descriptors();
        println!("RESULT baseline={baseline} after={after}");
        assert_eq!(after, baseline, "descriptors leaked by the listener");
        return;
    }
    let output = common::self_command(NAME, "leak-check").output().unwrap();
    let results = common::results(&output);
    let line = &results[0];
    assert_eq!(
        common::field(line, "baseline"),
        common::field(line, "after")
    );
}

fn leak_scenarios(reservation: Reservation) {
    // Busy traffic both ways, then both passers dropped.
    {
        let (mut a, mut b) = Passer::pair(config(reservation, 8)).unwrap();
        transfer(&mut a, &mut b, [500, 500], 40);
    }

    // The peer goes away; the survivor is dropped after Closed.
    peer_drop_is_closed_not_failed(config(reservation, 4));

    // Descriptors read ahead are closed with the passer.
    {
        let (mut a, mut b) = pair_after_hellos(config(reservation, 16));
        for n in 0..10 {
            a.push_send(numbered_pipe(n)).unwrap();
        }
        b.push_recv().unwrap();
        finish_sending(&mut a, 10);
        let mut got = false;
        drive(&mut [&mut b], |_, events| {
            for (_, event) in events {
                assert!(matches!(event, Event::Received(..)), "{event:?}");
                got = true;
            }
            got
        });
        assert_eq!(b.held_descriptors(), 9 + idle_holding(*b.config()));
    }

    // Received events never drained are closed with the passer.
    {
        let (mut a, mut b) = pair_after_hellos(config(reservation, 4));
        for n in 0..5 {
            a.push_send(numbered_pipe(n)).unwrap();
            b.push_recv().unwrap();
        }
        finish_sending(&mut a, 5);
        b.handle_readable(Instant::now());
        assert_eq!(b.outstanding_recvs(), 0, "all five arrived at once");
    }

    // Closing with sends queued closes them; the peer sees only the close.
    {
        let (mut a, mut b) = Passer::pair(config(reservation, 4)).unwrap();
        for n in 0..10 {
            a.push_send(numbered_pipe(n)).unwrap();
        }
        a.close();
        assert_eq!(a.held_descriptors(), 0);
        assert!(matches!(
            a.push_send(numbered_pipe(99)),
            Err(PushError::Unusable(Error::Closed, _))
        ));
        b.push_recv().unwrap();
        assert!(receive_until_closed(&mut b).is_empty());
    }

    // A protocol failure closes everything the passer held.
    {
        let (raw, socket) = fdpass_core::socket::pair().unwrap();
        let mut b = Passer::new(socket, config(reservation, 4)).unwrap();
        rustix::io::write(&raw, b"xyz").unwrap();
        b.push_recv().unwrap();
        let failure = expect_failure(&mut b);
        // Not a native hello.
        assert!(
            matches!(failure, Error::Protocol(ProtocolError::BadHello)),
            "{failure:?}"
        );
        assert_eq!(b.held_descriptors(), 0);
    }

    // More descriptors in one message than the receiver accepts: the
    // classic wire, where nothing announces the receiver's limit (a native
    // sender keeps to the limit its peer announced).
    {
        let (x, y) = fdpass_core::socket::pair().unwrap();
        let classic = fdpass_core::Wire::Classic { batch: 8 };
        let mut a = Passer::new(x, config(reservation, 8).with_wire(classic)).unwrap();
        let mut b = Passer::new(y, config(reservation, 1).with_wire(classic)).unwrap();
        for n in 0..8 {
            a.push_send(numbered_pipe(n)).unwrap();
        }
        finish_sending(&mut a, 8);
        b.push_recv().unwrap();
        let failure = expect_failure(&mut b);
        assert!(
            matches!(
                failure,
                Error::Protocol(ProtocolError::TooManyDescriptors { limit: 1 })
            ),
            "{failure:?}"
        );
        assert_eq!(b.held_descriptors(), 0);
    }
}

fn expect_failure(passer: &mut Passer) -> Error {
    let mut failure = None;
    drive(&mut [passer], |_, events| {
        for (_, event) in events {
            match event {
                Event::Failed(e) => failure = Some(e),
                other => panic!("expected Failed, got {other:?}"),
            }
        }
        failure.is_some()
    });
    failure.unwrap()
}

fn listener_scenarios() {
    let dir = TempDir::new("leaks");
    let path = dir.path().join("sock");
    drop(Listener::bind(&path).unwrap());
    let listener = Listener::bind(&path).unwrap();
    assert!(Listener::bind(&path).is_err());
    let client = connect(&path).unwrap();
    let mut server = None;
    while let Ok(socket) = listener.accept() {
        server = Some(socket);
    }
    let mut a = Passer::new(client, Config::default()).unwrap();
    let mut b = Passer::new(server.unwrap(), Config::default()).unwrap();
    transfer(&mut a, &mut b, [20, 20], 8);
}

/// Descriptors in this process's table that are ends of the pipes `inodes`
/// name (read from `/proc/self/fd`, so other threads' descriptors do not
/// count).
fn ends_of(inodes: &[u64]) -> usize {
    let links: Vec<String> = inodes.iter().map(|i| format!("pipe:[{i}]")).collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| links.iter().any(|l| target.as_os_str() == l.as_str()))
        .count()
}

/// What the sentinel reservation relies on when it looks before freeing its
/// slots: a `MSG_PEEK` with no control buffer installs none of the waiting
/// descriptors and leaves all of them for the read.
#[test]
fn a_look_before_reading_installs_and_consumes_nothing() {
    use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
    use std::os::fd::AsFd;

    let mut sys = SystemCalls::default();
    let (a, b) = fdpass_core::socket::pair().unwrap();
    let mut inodes = Vec::new();
    let mut read_ends = Vec::new();
    for n in 0..3 {
        let read_end = numbered_pipe(n);
        inodes.push(rustix::fs::fstat(&read_end).unwrap().st_ino);
        read_ends.push(read_end);
    }
    sys.sendmsg(a.as_fd(), &[0; 3], &read_ends).unwrap();
    drop(read_ends);
    assert_eq!(ends_of(&inodes), 0, "only the kernel holds them");
    for _ in 0..10 {
        assert_eq!(sys.peek_bytes(b.as_fd(), &mut [0u8; 1]), Some(Ok(1)));
        assert_eq!(sys.peek_bytes(b.as_fd(), &mut [0u8; 8]), Some(Ok(3)));
    }
    assert_eq!(ends_of(&inodes), 0, "a look installed descriptors");
    let mut fds = Vec::new();
    let got = sys
        .recvmsg(b.as_fd(), &mut [0u8; 3], 3, RecvMode::Take, &mut fds)
        .unwrap();
    assert_eq!((got.bytes, got.truncated_control), (3, false));
    assert_eq!(ends_of(&inodes), 3);
    let numbers: Vec<u64> = fds.into_iter().map(read_number).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(
        sys.peek_bytes(b.as_fd(), &mut [0u8; 1]),
        Some(Err(rustix::io::Errno::AGAIN))
    );
}
