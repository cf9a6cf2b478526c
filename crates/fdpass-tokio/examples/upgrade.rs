//! An HTTP-ish TCP server that upgrades itself on SIGHUP without refusing a
//! single connection.
//!
//! ```text
//! cargo run -p fdpass-tokio --example upgrade -- 127.0.0.1:8080 /tmp/upgrade.pid
//! curl http://127.0.0.1:8080/            # served by pid A
//! kill -HUP "$(cat /tmp/upgrade.pid)"    # A starts B, hands over, B says ready, A drains and exits
//! curl http://127.0.0.1:8080/            # served by pid B
//! kill -TERM "$(cat /tmp/upgrade.pid)"   # B stops accepting, drains and exits
//! ```
//!
//! Where the listener comes from, in order: the predecessor's hand-over (this
//! process was started by an upgrade), systemd's socket activation (built
//! with the `systemd` feature: a socket named `http`, or the first one), or
//! a fresh bind. On SIGHUP the server starts its own binary again as the
//! successor, with the same arguments; it keeps accepting while the
//! successor starts, and stops only once the successor said it is ready. A
//! successor that crashes, hangs or declines is stopped, and this process
//! goes on serving. SIGTERM or SIGINT: stop accepting, drain, exit.
//!
//! Settings come from the arguments (`ADDRESS [PID_FILE]`) or from the
//! environment: `UPGRADE_EXAMPLE_ADDR`, `UPGRADE_EXAMPLE_PID_FILE`,
//! `UPGRADE_EXAMPLE_READY_TIMEOUT_MS` (default 10000). To try the failure
//! paths by hand, set `UPGRADE_EXAMPLE_FAULT_FILE` to a path and write
//! `crash`, `hang` or `decline` into that file before a SIGHUP: the next
//! successor removes the file and fails that way before it is ready.

use std::error::Error;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fdpass_tokio::upgrade::{tcp_listener, tcp_listener_copy, NamedFds, Successor, Upgrader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to bind when nothing is handed over.
    pub addr: String,
    /// Where to keep the serving process's pid.
    pub pid_file: Option<PathBuf>,
    /// How long a successor may take to say it is ready.
    pub ready_timeout: Duration,
    /// A file whose content makes the next successor fail (see the docs).
    pub fault_file: Option<PathBuf>,
}

impl Options {
    /// From the environment, overridden by the arguments `ADDRESS [PID_FILE]`.
    pub fn from_env_and_args(args: &[String]) -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Options {
            addr: args
                .first()
                .cloned()
                .or_else(|| var("UPGRADE_EXAMPLE_ADDR"))
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            pid_file: args
                .get(1)
                .cloned()
                .or_else(|| var("UPGRADE_EXAMPLE_PID_FILE"))
                .map(PathBuf::from),
            ready_timeout: Duration::from_millis(
                var("UPGRADE_EXAMPLE_READY_TIMEOUT_MS")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(10_000),
            ),
            fault_file: var("UPGRADE_EXAMPLE_FAULT_FILE").map(PathBuf::from),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(Options::from_env_and_args(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upgrade example {}: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

/// Runs one generation of the server until it hands over or is told to stop.
pub fn run(options: Options) -> Result<(), Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(serve(options))
}

async fn serve(options: Options) -> Result<(), Box<dyn Error>> {
    let me = std::process::id();
    // 1. The listener: handed over, socket-activated, or bound afresh.
    let successor = Successor::inherit(options.ready_timeout).await?;
    let (listener, successor) = match successor {
        Some(mut successor) => {
            let fd = successor
                .fds()
                .take("http")
                .ok_or("the predecessor handed over no descriptor named \"http\"")?;
            (tcp_listener(fd)?, Some(successor))
        }
        None => (fresh_listener(&options.addr).await?, None),
    };
    // 2. Everything that could still fail, before saying ready: the signal
    //    handlers above all (a SIGHUP meant for the next upgrade must not
    //    kill this process by its default action).
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let address = listener.local_addr()?;
    if let Some(successor) = successor {
        if let Some(fault) = take_fault(&options) {
            match fault.as_str() {
                "crash" => std::process::exit(3),
                "hang" => std::future::pending::<()>().await,
                _ => {
                    successor
                        .fail("told to decline", options.ready_timeout)
                        .await?;
                    return Ok(());
                }
            }
        }
        // 3. Ready: the predecessor stops accepting from now on.
        successor.ready(options.ready_timeout).await?;
    }
    let mut fds = NamedFds::new();
    fds.insert_with_meta("http", tcp_listener_copy(&listener)?, address.to_string())?;
    let mut upgrader = Upgrader::new(fds).with_ready_timeout(options.ready_timeout);
    if let Some(pid_file) = &options.pid_file {
        upgrader = upgrader.with_pid_file(pid_file)?;
    }
    println!("ready pid={me} listening on {address}");

    // 4. Serve; upgrade on SIGHUP while still accepting.
    let served = Arc::new(AtomicU64::new(0));
    let mut connections = tokio::task::JoinSet::new();
    let (outcome_sender, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let served = Arc::clone(&served);
                    connections.spawn(async move {
                        if answer(stream, me).await.is_ok() {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                // EMFILE and the like: the connection waits in the backlog.
                Err(e) => eprintln!("pid={me} accept failed: {e}"),
            },
            _ = hangup.recv() => {
                let upgrader = upgrader.clone();
                let outcome_sender = outcome_sender.clone();
                let mut command = Command::new(std::env::current_exe()?);
                command.args(std::env::args_os().skip(1));
                tokio::spawn(async move {
                    let _ = outcome_sender.send(upgrader.upgrade_by_spawning(command).await);
                });
            }
            Some(outcome) = outcomes.recv() => match outcome {
                Ok(upgraded) => {
                    println!("pid={me} handed over to pid={}", upgraded.pid.unwrap_or(0));
                    break;
                }
                Err(e) => println!("pid={me} upgrade failed: {e}"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            Some(_) = connections.join_next() => {}
        }
    }
    // 5. Stop accepting (the successor, if any, holds the socket: nothing is
    //    refused), drain what was accepted, exit.
    drop(listener);
    drop(upgrader);
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    println!(
        "pid={me} exiting after {} requests{}",
        served.load(Ordering::Relaxed),
        if drained.is_err() {
            " (drain timed out)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A listener from systemd when socket-activated (and built with the
/// `systemd` feature), otherwise bound at `addr`.
async fn fresh_listener(addr: &str) -> Result<TcpListener, Box<dyn Error>> {
    #[cfg(feature = "systemd")]
    {
        let mut activated = fdpass_core::systemd::listen_fds()?;
        let name = if activated.get("http").is_some() {
            Some("http".to_owned())
        } else {
            activated.names().next().map(str::to_owned)
        };
        if let Some(fd) = name.and_then(|name| activated.take(&name)) {
            return Ok(tcp_listener(fd)?);
        }
    }
    Ok(TcpListener::bind(addr).await?)
}

fn take_fault(options: &Options) -> Option<String> {
    let path = options.fault_file.as_ref()?;
    let fault = std::fs::read_to_string(path).ok()?;
    std::fs::remove_file(path).ok()?;
    Some(fault.trim().to_owned())
}

/// Reads one request (up to the blank line) and answers with who served it.
async fn answer(mut stream: TcpStream, me: u32) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let body = format!("served by pid {me}\n");
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
