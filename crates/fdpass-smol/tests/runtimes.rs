//! The passer under each executor that runs on async-io's reactor.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{pipe_with, seq_of, within};
use fdpass_smol::{Error, Passer};

const COUNT: u64 = 2_000;

/// Sends `COUNT` numbered pipes through `to` and checks that `from` yields
/// the numbers `COUNT` sent the other way, in order.
async fn send_all(to: Passer) -> Result<(), Error> {
    for seq in 0..COUNT {
        if seq % 3 == 0 {
            to.push_send(pipe_with(seq))?;
        } else {
            to.send(pipe_with(seq)).await?;
        }
    }
    to.flush().await
}

async fn recv_all(from: Passer) -> Result<(), Error> {
    for seq in 0..COUNT {
        let fd = from.recv().await?.expect("the peer is still open");
        assert_eq!(seq_of(fd), seq);
    }
    Ok(())
}

#[test]
fn smol_block_on() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        a.send(pipe_with(1)).await?;
        a.push_send(pipe_with(2))?;
        a.flush().await?;
        assert_eq!(seq_of(b.recv().await?.unwrap()), 1);
        assert_eq!(seq_of(b.recv().await?.unwrap()), 2);
        b.send(pipe_with(3)).await?;
        assert_eq!(seq_of(a.recv().await?.unwrap()), 3);
        a.close();
        assert!(b.recv().await?.is_none());
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn multi_threaded_smol_executor() {
    let executor = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let executor = executor.clone();
            let stopped = stopped.clone();
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();

    let (a, b) = Passer::pair().unwrap();
    let tasks = [
        executor.spawn(send_all(a.clone())),
        executor.spawn(recv_all(b.clone())),
        executor.spawn(send_all(b)),
        executor.spawn(recv_all(a)),
    ];
    smol::block_on(within(120, async {
        for task in tasks {
            task.await.unwrap();
        }
    }));

    drop(stop);
    for thread in threads {
        // `run` ends when the stop channel closes.
        assert!(thread.join().unwrap().is_err());
    }
}

#[test]
fn async_std_executor() {
    async_std::task::block_on(async {
        let work = async {
            let (a, b) = Passer::pair()?;
            let tasks = [
                async_std::task::spawn(send_all(a.clone())),
                async_std::task::spawn(recv_all(b.clone())),
                async_std::task::spawn(send_all(b)),
                async_std::task::spawn(recv_all(a)),
            ];
            for task in tasks {
                task.await?;
            }
            Ok::<_, Error>(())
        };
        async_std::future::timeout(Duration::from_secs(120), work)
            .await
            .expect("timed out")
            .unwrap();
    });
}

#[test]
fn async_std_listener() {
    let dir =
        std::env::temp_dir().join(format!("fdpass-smol-test-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    async_std::task::block_on(async {
        let work = async {
            let listener = fdpass_smol::Listener::bind(&path)?;
            let server = async_std::task::spawn(async move {
                let passer = listener.accept().await?;
                let mut seen = Vec::new();
                while let Some(fd) = passer.recv().await? {
                    seen.push(seq_of(fd));
                }
                Ok::<_, Error>(seen)
            });
            let client = Passer::connect(&path).await?;
            for seq in 0..10 {
                client.send(pipe_with(seq)).await?;
            }
            drop(client);
            assert_eq!(server.await?, (0..10).collect::<Vec<_>>());
            Ok::<_, Error>(())
        };
        async_std::future::timeout(Duration::from_secs(60), work)
            .await
            .expect("timed out")
            .unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
