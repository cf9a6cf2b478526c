//! Deadlines for the upgrade on the crate's alarm thread rather than tokio's
//! timer, as for a passer's own deadlines (see the `alarm` module): a
//! runtime built without `enable_time` gives an error here, not a panic.

use std::future::Future;
use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::alarm::{self, Alarm};

/// One deadline at a time, re-armed freely.
pub(super) struct Timer {
    queue: &'static alarm::Queue,
    alarm: Alarm,
}

impl Timer {
    /// # Errors
    /// The process's alarm thread could not be started (`EAGAIN`).
    pub(super) fn new() -> io::Result<Timer> {
        Ok(Timer {
            queue: alarm::queue()?,
            alarm: Alarm::default(),
        })
    }

    /// Ready once `deadline` has passed; until then `cx` is woken at it.
    pub(super) fn poll_at(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        self.alarm.poll_at(self.queue, cx, deadline)
    }

    /// `work`'s output, or `None` if `deadline` passes first.
    pub(super) async fn within<T>(
        &mut self,
        deadline: Instant,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            self.poll_at(cx, deadline).map(|()| None)
        })
        .await
    }
}
