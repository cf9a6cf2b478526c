//! Why a non-blocking push did not queue, with what it did not queue.

use std::fmt;
use std::os::fd::OwnedFd;

use crate::Error;

/// A push ([`Passer::push_send`](crate::Passer::push_send),
/// [`push_send_many`](crate::Passer::push_send_many) and the adapters' pushes)
/// that queued nothing. It hands back what was pushed, still open: a
/// descriptor (`T = OwnedFd`) or a batch (`T = Vec<OwnedFd>`, in push order).
/// Named after tokio's `mpsc::error::TrySendError`, whose `Full` it mirrors.
///
/// Converting it into an [`Error`] (what `?` does in a function returning
/// `Result<_, fdpass_core::Error>`) lets go of the descriptors (closed off
/// the caller's thread, see [`disposal`](crate::disposal)); match on it to
/// keep them.
///
/// ```
/// use fdpass_core::{Config, Passer, PushError};
///
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (mut a, _b) = Passer::pair(Config::default().with_max_queued_sends(Some(1)))?;
/// let (first, _w1) = rustix::pipe::pipe()?;
/// let (second, _w2) = rustix::pipe::pipe()?;
/// a.push_send(first)?;
/// match a.push_send(second) {
///     // The queue is at its mark: the descriptor comes back, still open.
///     Err(PushError::Full(fd)) => assert!(rustix::io::fcntl_getfd(&fd).is_ok()),
///     other => panic!("expected Full, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The send queue holds [`Config::max_queued_sends`](crate::Config::max_queued_sends)
    /// descriptors (the high-water mark): nothing was queued. Push again
    /// after an [`Event::Sent`](crate::Event::Sent) made room, or use an
    /// adapter's `send(fd).await`, which waits for room.
    Full(T),
    /// The passer cannot send any more (it failed, or this side closed or
    /// shut it down): nothing was queued. The error says why, as
    /// [`Passer::usable`](crate::Passer::usable) does.
    Unusable(Error, T),
    /// The message can never be sent on this passer: it is larger than the
    /// peer accepts ([`Error::MessageTooLarge`]: the peer's announced limits
    /// on the native wire; any payload on the classic wire). Nothing was
    /// queued; pushing it again will fail the same way.
    Refused(Error, T),
}

impl<T> PushError<T> {
    /// What was pushed and not queued, still open.
    ///
    /// ```
    /// use fdpass_core::{Error, PushError};
    /// let (fd, _w) = rustix::pipe::pipe().unwrap();
    /// let error = PushError::Unusable(Error::Closed, fd);
    /// let _fd_back: std::os::fd::OwnedFd = error.into_inner();
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(t) | PushError::Unusable(_, t) | PushError::Refused(_, t) => t,
        }
    }

    /// Whether the queue was only full (pushing later may succeed).
    ///
    /// ```
    /// let (fd, _w) = rustix::pipe::pipe().unwrap();
    /// assert!(fdpass_core::PushError::Full(fd).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, PushError::Full(_))
    }

    /// The error this push stands for, without the descriptors:
    /// [`Error::SendQueueFull`] for [`PushError::Full`].
    ///
    /// ```
    /// use fdpass_core::{Error, PushError};
    /// let (fd, _w) = rustix::pipe::pipe().unwrap();
    /// assert!(matches!(PushError::Unusable(Error::Closed, fd).error(), Error::Closed));
    /// ```
    pub fn error(&self) -> Error {
        match self {
            PushError::Full(_) => Error::SendQueueFull,
            PushError::Unusable(e, _) | PushError::Refused(e, _) => e.clone(),
        }
    }

    /// The same error holding something else (an adapter maps a batch back
    /// to what its caller pushed).
    ///
    /// ```
    /// let (fd, _w) = rustix::pipe::pipe().unwrap();
    /// let batch = fdpass_core::PushError::Full(fd).map(|fd| vec![fd]);
    /// assert_eq!(batch.into_inner().len(), 1);
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PushError<U> {
        match self {
            PushError::Full(t) => PushError::Full(f(t)),
            PushError::Unusable(e, t) => PushError::Unusable(e, f(t)),
            PushError::Refused(e, t) => PushError::Refused(e, f(t)),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error())
    }
}

impl<T: fmt::Debug> std::error::Error for PushError<T> {}

impl From<PushError<OwnedFd>> for Error {
    fn from(e: PushError<OwnedFd>) -> Self {
        let error = e.error();
        // A descriptor we were asked to pass may be the last reference to
        // someone else's file: never closed on the caller's thread.
        crate::disposal::dispose(e.into_inner());
        error
    }
}

impl From<PushError<Vec<OwnedFd>>> for Error {
    fn from(e: PushError<Vec<OwnedFd>>) -> Self {
        let error = e.error();
        e.into_inner()
            .into_iter()
            .for_each(crate::disposal::dispose);
        error
    }
}

impl<T> From<PushError<T>> for std::io::Error
where
    Error: From<PushError<T>>,
{
    fn from(e: PushError<T>) -> Self {
        Error::from(e).into()
    }
}

impl From<PushError<crate::Message>> for Error {
    fn from(e: PushError<crate::Message>) -> Self {
        let error = e.error();
        e.into_inner()
            .fds
            .into_iter()
            .for_each(crate::disposal::dispose);
        error
    }
}
