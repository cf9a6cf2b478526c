//! A privileged broker on mio: a client that may not open files itself asks
//! the broker for each one, and the broker answers with the open descriptor
//! or with the reason it refused (an errno).
//!
//! Every request is one message: a request id and a path as payload. Every
//! answer is one message too: the same id and an errno as payload, and, when
//! the errno is 0, the opened file as its one descriptor. The client sends
//! all its requests at once, so many are in flight, and matches each answer
//! to its request by id: the broker answers in the order it likes (here each
//! burst of requests newest first), and a descriptor can never be taken for
//! another request's, since it travels in its answer's message.
//!
//! The broker opens only files in a directory of its own (its policy); the
//! client asks for some of those, some missing ones (`ENOENT`), and one
//! outside (`EACCES`, refused by the policy without trying), and checks
//! every answer: the contents read through each descriptor, or the errno.
//! In a real deployment the client would run without the right to open these
//! files (another user, a sandbox); the exchange is the same. The program
//! checks itself and exits 0 when every answer matched:
//!
//! ```text
//! cargo run -p fdpass-mio --example broker
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fdpass_mio::{Event, Message, Passer};
use mio::{Events, Interest, Poll, Token};
use rustix::io::Errno;

/// How many requests the client sends, all at once.
pub const REQUESTS: u64 = 100;
/// The longest either side runs; reaching it is a failure.
const OVERALL: Duration = Duration::from_secs(30);
/// Tells the client where the broker's files are.
const DIR_VAR: &str = "FDPASS_BROKER_DIR";
/// Each side's only token: its passer to the other.
const PEER: Token = Token(0);

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().nth(1).as_deref() == Some("client") {
        return client();
    }
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("client");
    let answered = broker(command)?;
    println!("broker: answered {answered} requests; the client matched every one");
    Ok(())
}

/// The privileged side: starts the client with `client` (this program
/// again), serves its requests until it closes the connection, and returns
/// how many it answered once the client exited successfully.
pub fn broker(mut client: Command) -> Result<u64, Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("fdpass-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for id in 0..REQUESTS {
        std::fs::write(dir.join(format!("file-{id}")), contents(id))?;
    }
    client.env(DIR_VAR, &dir);
    let (mut passer, mut child) = Passer::spawn_child(&mut client)?;
    let served = serve(&mut passer, &dir);
    // Closing our end also ends a client left waiting by a failure above.
    passer.close();
    let status = child.wait()?;
    std::fs::remove_dir_all(&dir)?;
    let answered = served?;
    if !status.success() {
        return Err(format!("the client failed: {status}").into());
    }
    Ok(answered)
}

/// Answers every request until the client closes the connection.
fn serve(passer: &mut Passer, dir: &Path) -> Result<u64, Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    poll.registry()
        .register(passer, PEER, Interest::READABLE | Interest::WRITABLE)?;
    let deadline = Instant::now() + OVERALL;
    let mut answered = 0;
    passer.push_recv_message()?;
    loop {
        let mut burst = Vec::new();
        while let Some(event) = passer.poll_event() {
            match event {
                Event::ReceivedMessage(_token, request) => burst.push(request),
                Event::Sent(_) => {}
                Event::Closed => return Ok(answered),
                Event::SendFailed(e) | Event::Failed(e) => return Err(e.into()),
                other => return Err(format!("broker: unexpected {other:?}").into()),
            }
        }
        if burst.is_empty() {
            turn(&mut poll, &mut events, passer, deadline)?;
            continue;
        }
        // The rest of what the same read brought, without waiting.
        while let Some((_token, request)) = passer.try_recv_message() {
            burst.push(request);
        }
        for request in burst.into_iter().rev() {
            passer.push_send_message(answer(dir, &request)?)?;
            answered += 1;
        }
        match passer.push_recv_message() {
            // The client's close may already have been read.
            Ok(_) | Err(fdpass_mio::Error::PeerClosed) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The broker's policy and its answer to one request: the file opened
/// read-only, or the errno saying why not.
fn answer(dir: &Path, request: &Message) -> Result<Message, Box<dyn Error>> {
    let (id, path) = request
        .payload
        .split_first_chunk::<8>()
        .ok_or("a request shorter than its id")?;
    let id = u64::from_be_bytes(*id);
    let path = Path::new(OsStr::from_bytes(path));
    let allowed = path.parent() == Some(dir)
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let opened = if allowed {
        File::open(path)
    } else {
        Err(io::Error::from(Errno::ACCESS))
    };
    Ok(match opened {
        Ok(file) => Message::new(encode(id, 0), vec![file.into()]),
        Err(e) => Message::from_payload(encode(
            id,
            e.raw_os_error().unwrap_or(Errno::IO.raw_os_error()),
        )),
    })
}

/// The unprivileged side: asks for every file at once, then checks each
/// answer against the request with its id.
pub fn client() -> Result<(), Box<dyn Error>> {
    let dir =
        PathBuf::from(std::env::var_os(DIR_VAR).ok_or("started without the broker's directory")?);
    let mut passer = Passer::from_inherited()?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    poll.registry()
        .register(&mut passer, PEER, Interest::READABLE | Interest::WRITABLE)?;

    // What each request in flight must bring back: contents or an errno.
    let mut in_flight: HashMap<u64, Result<Vec<u8>, Errno>> = HashMap::new();
    for id in 0..REQUESTS {
        let (path, expected) = match id % 4 {
            0 | 1 => (dir.join(format!("file-{id}")), Ok(contents(id))),
            2 => (dir.join(format!("missing-{id}")), Err(Errno::NOENT)),
            _ => (
                dir.join("..").join(format!("file-{id}")),
                Err(Errno::ACCESS),
            ),
        };
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(path.as_os_str().as_bytes());
        passer.push_send_message(Message::from_payload(payload))?;
        passer.push_recv_message()?;
        in_flight.insert(id, expected);
    }

    let deadline = Instant::now() + OVERALL;
    while !in_flight.is_empty() {
        while let Some(event) = passer.poll_event() {
            match event {
                Event::ReceivedMessage(_token, answer) => check(answer, &mut in_flight)?,
                Event::Sent(_) => {}
                other => return Err(format!("client: unexpected {other:?}").into()),
            }
        }
        if !in_flight.is_empty() {
            turn(&mut poll, &mut events, &mut passer, deadline)?;
        }
    }
    println!("client: {REQUESTS} answers, each matched to its request");
    // Dropping the passer closes the connection: the broker's cue to stop.
    Ok(())
}

/// Checks one answer against the request with its id, and retires it.
fn check(
    answer: Message,
    in_flight: &mut HashMap<u64, Result<Vec<u8>, Errno>>,
) -> Result<(), Box<dyn Error>> {
    let (id, errno) = answer
        .payload
        .split_first_chunk::<8>()
        .and_then(|(id, errno)| Some((*id, <[u8; 4]>::try_from(errno).ok()?)))
        .ok_or("an answer that is not an id and an errno")?;
    let (id, errno) = (u64::from_be_bytes(id), i32::from_be_bytes(errno));
    let expected = in_flight
        .remove(&id)
        .ok_or_else(|| format!("an answer for request {id}, which is not in flight"))?;
    match (expected, errno, <[OwnedFd; 1]>::try_from(answer.fds)) {
        (Ok(expected), 0, Ok([fd])) => {
            let mut got = Vec::new();
            File::from(fd).read_to_end(&mut got)?;
            if got != expected {
                return Err(format!("request {id}: the descriptor reads {got:?}").into());
            }
        }
        (Err(expected), errno, Err(fds)) if errno == expected.raw_os_error() && fds.is_empty() => {}
        (expected, errno, fds) => {
            let fds = fds.map_or_else(|fds| fds.len(), |_| 1);
            return Err(format!(
                "request {id}: expected {expected:?}, got errno {errno} with {fds} descriptor(s)"
            )
            .into());
        }
    }
    Ok(())
}

/// One turn of a loop: poll (no longer than the passer's timer and the
/// deadline allow), then hand the passer what happened.
fn turn(
    poll: &mut Poll,
    events: &mut Events,
    passer: &mut Passer,
    deadline: Instant,
) -> Result<(), Box<dyn Error>> {
    let now = Instant::now();
    let left = deadline
        .checked_duration_since(now)
        .ok_or("not finished in time")?;
    let timeout = passer.poll_duration(now).map_or(left, |d| d.min(left));
    match poll.poll(events, Some(timeout)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        result => result?,
    }
    for event in events.iter() {
        passer.handle_event(event);
    }
    passer.handle_timeout(Instant::now());
    Ok(())
}

/// An answer's payload: the request's id, then the errno (0: the file is
/// the message's descriptor).
fn encode(id: u64, errno: i32) -> Vec<u8> {
    [&id.to_be_bytes()[..], &errno.to_be_bytes()].concat()
}

/// What the broker's file number `id` holds.
fn contents(id: u64) -> Vec<u8> {
    format!("the contents of file {id}\n").into_bytes()
}
