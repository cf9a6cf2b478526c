//! The message mix of the native wire: what message number `seq` of a
//! stream carries, as a pure function of the stream's seed, so that the
//! receiver knows what to expect (and which kind of request to make for it)
//! without being told.
//!
//! A quarter of the messages are one descriptor and nothing else, an eighth
//! several descriptors and nothing else, a quarter payload only, the rest a
//! payload with a few descriptors, and one in sixteen a large payload (beyond
//! what a native sender may send before the peer's hello) with anything up
//! to `max_fds_per_message` descriptors. The descriptors are numbered files
//! ([`crate::payload`]); a payload says which message it is and whether it is
//! the last, and the rest of its bytes are a pattern of the seed and the
//! number, so a byte out of place is seen.

use crate::rng::mix;

/// The bytes that open every payload: the message's number (8 bytes, little
/// endian) and its last flag (1 byte). A payload is never shorter.
pub const HEADER_LEN: usize = 9;

/// The largest payload of the mix's small messages.
const SMALL_MAX: usize = 1024;

/// What one message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Payload bytes: 0, or at least [`HEADER_LEN`].
    pub payload_len: usize,
    /// Descriptors.
    pub fds: usize,
}

impl Shape {
    /// The shape of message `seq` of the stream seeded `seed`, for a peer
    /// that takes at most `max_fds` descriptors and `max_payload` payload
    /// bytes per message.
    ///
    /// ```
    /// use fdpass_soak::mix::Shape;
    /// let shape = Shape::for_seq(7, 100, 128, 65536);
    /// assert_eq!(shape, Shape::for_seq(7, 100, 128, 65536));
    /// assert!(shape.fds <= 128 && shape.payload_len <= 65536);
    /// assert!(shape.fds > 0 || shape.payload_len > 0);
    /// ```
    pub fn for_seq(seed: u64, seq: u64, max_fds: usize, max_payload: usize) -> Shape {
        let h = mix(seed ^ mix(seq ^ 0x6d65_7373_6167_6573));
        let v = (h >> 8) as usize;
        let w = (h >> 36) as usize;
        let few = max_fds.min(4);
        let small = HEADER_LEN + v % (SMALL_MAX - HEADER_LEN + 1);
        match h % 16 {
            0..=3 => Shape {
                payload_len: 0,
                fds: 1,
            },
            4..=5 => Shape {
                payload_len: 0,
                fds: 1 + w % max_fds.min(8),
            },
            6..=9 => Shape {
                payload_len: small,
                fds: 0,
            },
            10..=14 => Shape {
                payload_len: small,
                fds: 1 + w % few,
            },
            _ => Shape {
                payload_len: 4097 + v % (max_payload.max(4097) - 4096),
                fds: w % (max_fds + 1),
            },
        }
        .capped(max_payload)
    }

    fn capped(self, max_payload: usize) -> Shape {
        Shape {
            payload_len: self.payload_len.min(max_payload),
            ..self
        }
    }

    /// Whether a receiver takes this message with descriptor requests (one
    /// per descriptor, `push_recv`) rather than one message request: half of
    /// the messages that carry descriptors and no payload, chosen by number.
    ///
    /// ```
    /// use fdpass_soak::mix::Shape;
    /// let fds_only = Shape { payload_len: 0, fds: 3 };
    /// assert!(fds_only.by_descriptor_requests(4));
    /// assert!(!fds_only.by_descriptor_requests(5));
    /// assert!(!Shape { payload_len: 20, fds: 1 }.by_descriptor_requests(4));
    /// ```
    pub fn by_descriptor_requests(&self, seq: u64) -> bool {
        self.payload_len == 0 && self.fds > 0 && seq.is_multiple_of(2)
    }
}

/// The payload of message `seq` (empty when `len` is 0).
///
/// ```
/// use fdpass_soak::mix::{check_payload, payload};
/// let bytes = payload(7, 3, 40, true);
/// assert_eq!(bytes.len(), 40);
/// assert_eq!(check_payload(7, 3, 40, &bytes), Ok(true));
/// assert!(check_payload(7, 4, 40, &bytes).is_err());
/// ```
pub fn payload(seed: u64, seq: u64, len: usize, last: bool) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.push(u8::from(last));
    bytes.extend((HEADER_LEN..len).map(|i| pattern(seed, seq, i)));
    bytes
}

/// Checks that `bytes` is message `seq`'s payload of `len` bytes, whole;
/// returns its last flag.
pub fn check_payload(seed: u64, seq: u64, len: usize, bytes: &[u8]) -> Result<bool, String> {
    if bytes.len() != len {
        return Err(format!(
            "message #{seq}: a payload of {} bytes, expected {len}",
            bytes.len()
        ));
    }
    if len == 0 {
        return Ok(false);
    }
    let mut number = [0u8; 8];
    number.copy_from_slice(&bytes[..8]);
    let got = u64::from_le_bytes(number);
    if got != seq {
        let what = if got < seq {
            "duplicated or out of order"
        } else {
            "lost or out of order"
        };
        return Err(format!("expected message #{seq}, got #{got} ({what})"));
    }
    let last = match bytes[8] {
        0 => false,
        1 => true,
        other => return Err(format!("message #{seq}: bad last flag {other}")),
    };
    if let Some(i) = (HEADER_LEN..len).find(|&i| bytes[i] != pattern(seed, seq, i)) {
        return Err(format!("message #{seq}: payload byte {i} differs"));
    }
    Ok(last)
}

fn pattern(seed: u64, seq: u64, i: usize) -> u8 {
    let word = mix(seed ^ seq.rotate_left(17) ^ (i / 8) as u64);
    (word >> (8 * (i % 8))) as u8
}
