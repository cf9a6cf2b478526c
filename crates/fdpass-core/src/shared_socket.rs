//! The passer's socket, owned jointly by the passer and reactor registrations.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The passer's socket, shared (as `Arc<SharedSocket>`, see
/// [`Passer::shared_socket`](crate::Passer::shared_socket)) between the
/// passer and reactor registrations that must own what they watch.
///
/// Whichever owner is dropped last releases the socket, never on the
/// dropping thread: it is shut down at once (the peer reads an orderly end of
/// stream), and a background thread drains what the peer left unread and
/// closes it (see [`disposal`](crate::disposal) for why and when).
///
/// ```
/// use std::os::fd::AsRawFd;
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
/// let socket: std::sync::Arc<fdpass_core::SharedSocket> = a.shared_socket();
/// assert_eq!(socket.as_raw_fd(), a.as_raw_fd());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedSocket {
    /// `None` only while being dropped.
    fd: Option<OwnedFd>,
}

impl SharedSocket {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        SharedSocket { fd: Some(fd) }
    }

    /// Gives up the socket without releasing it: the caller owns it now.
    pub(crate) fn into_fd(mut self) -> OwnedFd {
        match self.fd.take() {
            Some(fd) => fd,
            // The descriptor leaves only here and in `drop`, each once.
            None => unreachable!("a shared socket is given up twice"),
        }
    }
}

impl AsFd for SharedSocket {
    /// For registering only: reading or writing would desynchronise the stream.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let _fd = a.shared_socket().as_fd().try_clone_to_owned();
    /// # Ok(()) }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            // The descriptor leaves only in `drop`, after which nothing can
            // borrow `self`.
            None => unreachable!("a shared socket is borrowed while dropped"),
        }
    }
}

impl AsRawFd for SharedSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for SharedSocket {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            crate::disposal::release_socket(fd);
        }
    }
}
