//! A prefork-style server: the parent accepts TCP connections and hands each
//! one to a worker child process over a passer; the worker answers on it.
//!
//! Run with `cargo run -p fdpass-tokio --example prefork`. It checks itself:
//! the parent connects a few clients to its own listener, reads the worker's
//! answers, and exits 0 when every client got its answer.

use std::os::fd::OwnedFd;
use std::time::Duration;

use fdpass_tokio::Passer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const WORKER_ARG: &str = "--worker";
const CLIENTS: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == WORKER_ARG) {
        worker().await
    } else {
        parent().await
    }
}

/// Accepts connections and passes each to the worker; then plays the clients.
async fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.arg(WORKER_ARG);
    let (to_worker, mut child) = Passer::spawn_child(&mut command)?;
    let worker_pid = child.id().ok_or("the worker exited at once")?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;

    // The acceptor: every accepted connection goes to the worker. Our copy is
    // closed once the kernel took it, so the parent holds no client sockets.
    let acceptor = tokio::spawn(async move {
        for _ in 0..CLIENTS {
            let (stream, _) = listener.accept().await?;
            let fd: OwnedFd = stream.into_std()?.into();
            to_worker.send(fd).await?;
        }
        // Closing the passer tells the worker there is no more work.
        to_worker.close();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });

    let mut answers = Vec::new();
    for i in 0..CLIENTS {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(format!("client {i}\n").as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        println!("parent: client {i} got {:?}", line.trim_end());
        answers.push(line);
    }
    acceptor.await?.map_err(|e| e.to_string())?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    assert!(status.success(), "worker failed: {status}");
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &format!("worker {worker_pid} served client {i}\n"));
    }
    println!("parent: all {CLIENTS} clients served by worker {worker_pid}");
    Ok(())
}

/// Receives connections until the parent closes the passer; answers each.
async fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let from_parent = Passer::from_inherited()?;
    let pid = std::process::id();
    let mut connections = Vec::new();
    while let Some(fd) = from_parent.recv().await? {
        let std_stream = std::net::TcpStream::from(fd);
        std_stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(std_stream)?;
        connections.push(tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await?;
            write
                .write_all(format!("worker {pid} served {}\n", line.trim_end()).as_bytes())
                .await?;
            Ok::<_, std::io::Error>(())
        }));
    }
    // The parent closed the passer: no more work. Finish what was handed over.
    let served = connections.len();
    for connection in connections {
        connection.await??;
    }
    eprintln!("worker {pid}: served {served} connections, parent closed");
    Ok(())
}
