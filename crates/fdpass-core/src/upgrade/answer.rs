//! The successor's answer: the protocol's second and last message.

use crate::Message;

use super::{UpgradeError, FAILED_PREFIX, READY};

/// What a successor tells the old process once it has the named set: it is
/// ready to take over, or it will not, and why.
///
/// ```
/// use fdpass_core::upgrade::Answer;
/// let message = Answer::Failed { reason: "port in use".into() }.into_message();
/// assert_eq!(message.payload, b"FAILED=port in use");
/// assert_eq!(Answer::from_message(message)?, Answer::Failed { reason: "port in use".into() });
/// # Ok::<(), fdpass_core::upgrade::UpgradeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// [`READY`]: the old process stops accepting, drains and exits.
    Ready,
    /// [`FAILED_PREFIX`] and a reason: the old process goes on serving.
    Failed {
        /// Why the successor will not take over (UTF-8; invalid bytes
        /// received become U+FFFD).
        reason: String,
    },
}

impl Answer {
    /// The message that carries the answer: its payload, no descriptors.
    ///
    /// ```
    /// let message = fdpass_core::upgrade::Answer::Ready.into_message();
    /// assert_eq!((message.payload.as_slice(), message.fds.len()), (&b"READY=1"[..], 0));
    /// ```
    pub fn into_message(self) -> Message {
        match self {
            Answer::Ready => Message::from_payload(READY),
            Answer::Failed { reason } => {
                let mut payload = FAILED_PREFIX.to_vec();
                payload.extend_from_slice(reason.as_bytes());
                Message::from_payload(payload)
            }
        }
    }

    /// The answer `message` carries.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::UnexpectedAnswer`] for anything else (another
    /// payload, or any descriptor); the descriptors that came with it are
    /// let go of through [`disposal`](crate::disposal) (a peer chose them,
    /// and their close may block).
    ///
    /// ```
    /// use fdpass_core::upgrade::{Answer, UpgradeError};
    /// let hello = fdpass_core::Message::from_payload(b"HELLO".to_vec());
    /// let err = Answer::from_message(hello).unwrap_err();
    /// assert!(matches!(err, UpgradeError::UnexpectedAnswer { payload_len: 5, descriptors: 0 }));
    /// ```
    pub fn from_message(message: Message) -> Result<Answer, UpgradeError> {
        if message.fds.is_empty() {
            if message.payload == READY {
                return Ok(Answer::Ready);
            }
            if let Some(reason) = message.payload.strip_prefix(FAILED_PREFIX) {
                return Ok(Answer::Failed {
                    reason: String::from_utf8_lossy(reason).into_owned(),
                });
            }
        }
        let error = UpgradeError::UnexpectedAnswer {
            payload_len: message.payload.len(),
            descriptors: message.fds.len(),
        };
        message.fds.into_iter().for_each(crate::disposal::dispose);
        Err(error)
    }
}
