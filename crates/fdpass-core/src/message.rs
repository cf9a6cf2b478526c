//! A message: payload bytes and descriptors that travel together.

use std::os::fd::OwnedFd;

/// Payload bytes and descriptors sent as one unit on the native wire: the
/// receiver gets them together, whole, in the order they were sent. Either
/// part may be empty.
///
/// A prefork parent sends a connection with its client's address; a broker
/// answers a request with the file it opened and the request's number.
///
/// ```
/// use fdpass_core::Message;
///
/// let (conn, _other) = std::os::unix::net::UnixStream::pair()?;
/// let message = Message::new(b"203.0.113.7:41512".to_vec(), vec![conn.into()]);
/// assert_eq!(message.fds.len(), 1);
/// assert_eq!(message.payload, b"203.0.113.7:41512");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Message {
    /// The payload: any bytes, at most the receiver's
    /// [`max_payload_len`](crate::Config::max_payload_len).
    pub payload: Vec<u8>,
    /// The descriptors, in order: at most the receiver's
    /// [`max_fds_per_message`](crate::Config::max_fds_per_message). Received
    /// ones are close-on-exec.
    pub fds: Vec<OwnedFd>,
}

impl Message {
    /// A message of `payload` and `fds`.
    ///
    /// ```
    /// let message = fdpass_core::Message::new(b"hi".to_vec(), Vec::new());
    /// assert!(message.fds.is_empty());
    /// ```
    pub fn new(payload: impl Into<Vec<u8>>, fds: Vec<OwnedFd>) -> Message {
        Message {
            payload: payload.into(),
            fds,
        }
    }

    /// A message of payload bytes only.
    ///
    /// ```
    /// let message = fdpass_core::Message::from_payload("status?");
    /// assert_eq!(message.payload, b"status?");
    /// ```
    pub fn from_payload(payload: impl Into<Vec<u8>>) -> Message {
        Message::new(payload, Vec::new())
    }

    /// A message of descriptors only.
    ///
    /// ```
    /// let (r, _w) = std::io::pipe()?;
    /// let message = fdpass_core::Message::from_fds(vec![r.into()]);
    /// assert!(message.payload.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fds(fds: Vec<OwnedFd>) -> Message {
        Message::new(Vec::new(), fds)
    }

    /// Whether it carries neither payload nor descriptors.
    ///
    /// ```
    /// assert!(fdpass_core::Message::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty() && self.fds.is_empty()
    }
}

impl From<OwnedFd> for Message {
    /// A message of one descriptor, no payload.
    fn from(fd: OwnedFd) -> Message {
        Message::from_fds(vec![fd])
    }
}
