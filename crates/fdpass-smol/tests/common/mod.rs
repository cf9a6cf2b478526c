//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

/// A pipe's read end whose only content is `seq`: what arrives can be checked
/// for identity and order.
pub fn pipe_with(seq: u64) -> OwnedFd {
    let (reader, mut writer) = std::io::pipe().expect("pipe"); // close-on-exec on every system
    writer.write_all(&seq.to_le_bytes()).expect("write to pipe");
    OwnedFd::from(reader)
}

/// The sequence number a [`pipe_with`] descriptor carries.
pub fn seq_of(fd: OwnedFd) -> u64 {
    let mut bytes = [0; 8];
    std::fs::File::from(fd)
        .read_exact(&mut bytes)
        .expect("read from pipe");
    u64::from_le_bytes(bytes)
}

/// Runs `fut`, failing the test if it takes longer than `secs` seconds. The
/// bound only catches hangs; nothing waits on it.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    smol::future::or(fut, async move {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out after {secs} s");
    })
    .await
}

/// A waker that reports each wake-up on a channel, so a test can poll a
/// future by hand and then wait (without sleeping) until it is woken.
pub fn channel_waker() -> (Waker, smol::channel::Receiver<()>) {
    let (tx, rx) = smol::channel::unbounded();
    (Waker::from(Arc::new(ChannelWaker(tx))), rx)
}

struct ChannelWaker(smol::channel::Sender<()>);

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.try_send(());
    }
}
