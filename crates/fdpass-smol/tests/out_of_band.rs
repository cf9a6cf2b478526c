//! A byte the peer sends with `MSG_OOB` never makes async-io's reactor wake
//! the receiver without progress. Linux (5.15 and later) keeps such a byte
//! apart from the stream (`manage_oob` in `net/unix/af_unix.c`): a peek skips
//! it and reports `EAGAIN` while the socket stays readable (and `EPOLLPRI`,
//! which async-io asks for with every read interest). The passer keeps it in
//! the stream (`SO_OOBINLINE`), where it is a typed protocol error.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use fdpass_smol::{Config, Error, Passer, ProtocolError, Reservation, Wire};
use rustix::io::Errno;
use rustix::net::SendFlags;

/// A waker that counts its wake-ups and unparks the polling thread.
struct Counting {
    wakes: AtomicUsize,
    thread: Thread,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.thread.unpark();
    }
}

/// A future that makes progress is woken a handful of times.
const MAX_POLLS: usize = 20;

#[test]
fn out_of_band_byte_never_spins_the_async_io_reactor() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let (peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
        // The peer speaks the classic wire: a byte without descriptor.
        let config = Config::default()
            .with_reservation(reservation)
            .with_wire(Wire::Classic { batch: 128 });
        let passer = Passer::with_config(ours.into(), config).unwrap();
        match rustix::net::send(&peer, &[0], SendFlags::OOB | SendFlags::DONTWAIT) {
            Ok(1) => {}
            Err(Errno::OPNOTSUPP) => {
                eprintln!("this kernel refuses MSG_OOB on AF_UNIX: nothing to test");
                return;
            }
            other => panic!("send: {other:?}"),
        }
        let counting = Arc::new(Counting {
            wakes: AtomicUsize::new(0),
            thread: std::thread::current(),
        });
        let waker = Waker::from(Arc::clone(&counting));
        let mut cx = Context::from_waker(&waker);
        let mut receiving = pin!(passer.recv());
        let give_up = Instant::now() + Duration::from_secs(3);
        let mut polls = 0;
        let outcome = loop {
            polls += 1;
            if let Poll::Ready(outcome) = receiving.as_mut().poll(&mut cx) {
                break Some(outcome);
            }
            let now = Instant::now();
            if polls >= MAX_POLLS || now >= give_up {
                break None;
            }
            // async-io's own thread drives the reactor while nobody blocks on it.
            std::thread::park_timeout(give_up - now);
        };
        let wakes = counting.wakes.load(Ordering::Relaxed);
        assert!(
            matches!(
                outcome,
                Some(Err(Error::Protocol(
                    ProtocolError::BytesWithoutDescriptors { bytes: 1, .. }
                )))
            ),
            "{reservation:?}: {outcome:?} after {polls} polls, {wakes} wake-ups"
        );
    }
}
