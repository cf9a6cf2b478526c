//! A mio TCP server that hands every connection it accepts to a worker
//! process, which answers it with a line and closes it.
//!
//! The server listens on an ephemeral port of 127.0.0.1, starts the worker
//! (this program again, with the argument `worker`) with one end of a new
//! passer connection, and passes each accepted socket over it. To be a
//! self-checking demo it then connects a few clients of its own (in a thread,
//! since they block), checks every answer and exits 0:
//!
//! ```text
//! cargo run -p fdpass-mio --example mio_server
//! ```

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fdpass_mio::{Event, Passer};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

/// How many client connections the demo makes.
const CLIENTS: usize = 5;
/// The longest either process runs; reaching it is a failure.
const OVERALL: Duration = Duration::from_secs(30);

const LISTENER: Token = Token(0);
const WORKER: Token = Token(1);
const CLIENTS_DONE: Token = Token(2);
/// The worker's only token: its passer to the server.
const SERVER: Token = Token(0);

fn main() -> Result<(), Box<dyn Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("worker") => worker(),
        _ => server(),
    }
}

fn server() -> Result<(), Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;

    // The worker inherits one end of a new connection; we keep the other.
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("worker");
    let (mut worker, mut child) = Passer::spawn_child(&mut command)?;
    poll.registry()
        .register(&mut worker, WORKER, Interest::READABLE | Interest::WRITABLE)?;
    println!(
        "server: listening on {addr}, worker is process {}",
        child.id()
    );

    // The clients block on their reads, so they run beside the loop and wake
    // it when they are done. The loop keeps the waker alive too: closing it
    // before the poll saw its event would lose the event.
    let waker = Arc::new(Waker::new(poll.registry(), CLIENTS_DONE)?);
    let clients = {
        let waker = Arc::clone(&waker);
        thread::spawn(move || {
            let answers = run_clients(addr);
            let _ = waker.wake();
            answers
        })
    };

    let deadline = Instant::now() + OVERALL;
    let mut handed_over = 0;
    let mut clients_done = false;
    while !clients_done {
        let now = Instant::now();
        let left = deadline
            .checked_duration_since(now)
            .ok_or("the demo did not finish in time")?;
        // The passer's retry deadline, if any, bounds the wait too.
        let timeout = worker.poll_duration(now).map_or(left, |d| d.min(left));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        for event in events.iter() {
            match event.token() {
                // Edge-triggered: accept everything that waits.
                LISTENER => loop {
                    match listener.accept() {
                        Ok((stream, _peer)) => {
                            worker.push_send(OwnedFd::from(stream))?;
                            handed_over += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                WORKER => worker.handle_event(event),
                CLIENTS_DONE => clients_done = true,
                _ => {}
            }
        }
        worker.handle_timeout(Instant::now());
        while let Some(event) = worker.poll_event() {
            match event {
                Event::Sent(token) => {
                    println!("server: connections up to #{} handed over", token.0)
                }
                Event::Closed => return Err("the worker closed its end early".into()),
                Event::Failed(e) => return Err(e.into()),
                _ => {}
            }
        }
    }

    let answers = clients.join().map_err(|_| "a client panicked")??;
    for (i, answer) in answers.iter().enumerate() {
        // Accept order is connect order, and the passer keeps it: client i
        // gets the worker's connection i.
        let expected = format!("hello from worker {}: you are connection {i}\n", child.id());
        if *answer != expected {
            return Err(format!("client {i} got {answer:?}, expected {expected:?}").into());
        }
    }
    if handed_over != CLIENTS {
        return Err(format!("handed over {handed_over} connections, expected {CLIENTS}").into());
    }

    // End-of-stream tells the worker to finish.
    worker.close();
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the worker failed: {status}").into());
    }
    println!("server: all {CLIENTS} clients got their answer; worker exited cleanly");
    Ok(())
}

/// Connects every client first (so several connections can travel in one
/// message), then reads each answer to end-of-file.
fn run_clients(addr: SocketAddr) -> io::Result<Vec<String>> {
    let mut streams = Vec::new();
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(OVERALL))?;
        streams.push(stream);
    }
    streams
        .into_iter()
        .map(|mut stream| {
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .collect()
}

/// The worker: receives connections from the server, answers each with one
/// line, and exits once the server closes its end.
fn worker() -> Result<(), Box<dyn Error>> {
    let mut server = Passer::from_inherited()?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    poll.registry()
        .register(&mut server, SERVER, Interest::READABLE | Interest::WRITABLE)?;

    // One request outstanding at a time: the passer reads only what we ask
    // for (plus the rest of one message).
    server.push_recv()?;
    let deadline = Instant::now() + OVERALL;
    let mut served = 0;
    loop {
        while let Some(event) = server.poll_event() {
            match event {
                Event::Received(_token, fd) => {
                    answer(fd, served)?;
                    served += 1;
                    match server.push_recv() {
                        // The server's close may already have been read.
                        Ok(_) | Err(fdpass_mio::Error::PeerClosed) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Event::Closed => {
                    println!("worker: served {served} connections; the server closed, exiting");
                    return Ok(());
                }
                Event::Failed(e) => return Err(e.into()),
                _ => {}
            }
        }
        let now = Instant::now();
        let left = deadline
            .checked_duration_since(now)
            .ok_or("the worker got no close in time")?;
        let timeout = server.poll_duration(now).map_or(left, |d| d.min(left));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        }
        for event in events.iter() {
            server.handle_event(event);
        }
        server.handle_timeout(Instant::now());
    }
}

/// Writes the answer and closes the connection. The socket arrives
/// non-blocking (the server's mio accepted it so); a line into a fresh
/// connection's empty buffer does not wait, but blocking with a timeout keeps
/// the worker correct even if it did.
fn answer(fd: OwnedFd, number: usize) -> io::Result<()> {
    let mut stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    writeln!(
        stream,
        "hello from worker {}: you are connection {number}",
        std::process::id()
    )
}
