//! A prefork server: the parent accepts TCP connections and hands each one
//! to one of its worker processes in a single message, the connection and
//! its client's address together; the worker greets the client by address.
//!
//! Run with `cargo run -p fdpass-tokio --example prefork`. It checks itself:
//! the parent connects a few clients to its own listener and exits 0 when
//! each was greeted with its own address by the worker it was handed to.

use std::error::Error;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_tokio::{Message, Passer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const WORKER_ARG: &str = "--worker";
/// How many worker processes the parent starts.
pub const WORKERS: usize = 2;
/// How many clients the parent plays once it listens.
pub const CLIENTS: usize = 6;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|a| a == WORKER_ARG) {
        return worker().await;
    }
    let program = std::env::current_exe()?;
    parent(|| {
        let mut command = Command::new(&program);
        command.arg(WORKER_ARG);
        command
    })
    .await
}

/// Starts the workers (each with a command from `worker_command`), hands
/// them the connections it accepts in turn, and plays the clients.
pub async fn parent(worker_command: impl Fn() -> Command) -> Result<(), Box<dyn Error>> {
    let mut workers = Vec::new();
    let mut children = Vec::new();
    for _ in 0..WORKERS {
        let (passer, child) = Passer::spawn_child(&mut worker_command())?;
        workers.push(passer);
        children.push(child);
    }
    let pids: Vec<u32> = children.iter().filter_map(|child| child.id()).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;

    let acceptor = tokio::spawn(async move {
        for turn in 0..CLIENTS {
            let (stream, client) = listener.accept().await?;
            // One message: whose connection it is travels with it. Our copy
            // is closed once the kernel took it.
            let connection: OwnedFd = stream.into_std()?.into();
            let message = Message::new(client.to_string(), vec![connection]);
            workers[turn % WORKERS].send_message(message).await?;
        }
        // Everything sent, then the end of the stream: no more work.
        let deadline = Instant::now() + Duration::from_secs(5);
        for worker in &workers {
            worker.shutdown(deadline).await?;
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    });

    for turn in 0..CLIENTS {
        let mut stream = TcpStream::connect(address).await?;
        let me = stream.local_addr()?;
        let mut greeting = String::new();
        stream.read_to_string(&mut greeting).await?;
        let expected = format!("hello {me}, from worker {}\n", pids[turn % WORKERS]);
        if greeting != expected {
            return Err(format!("client {me} got {greeting:?}, expected {expected:?}").into());
        }
        print!("client: {greeting}");
    }
    acceptor.await?.map_err(|e| e.to_string())?;
    for mut child in children {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    println!("parent: {CLIENTS} clients, each greeted by its address");
    Ok(())
}

/// Greets each client it is handed by the address that came with it, until
/// the parent closes the passer.
pub async fn worker() -> Result<(), Box<dyn Error>> {
    let from_parent = Passer::from_inherited()?;
    while let Some(Message { payload, fds }) = from_parent.recv_message().await? {
        let client = String::from_utf8(payload)?;
        let [connection] =
            <[OwnedFd; 1]>::try_from(fds).map_err(|_| "one connection per message")?;
        let connection = std::net::TcpStream::from(connection);
        connection.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(connection)?;
        let greeting = format!("hello {client}, from worker {}\n", std::process::id());
        stream.write_all(greeting.as_bytes()).await?;
    }
    Ok(())
}
