//! The native wire's frames: an 8-byte header, then a body
//! (`docs/wire.md`, "The native wire"). Pure encoding and decoding, no I/O,
//! so that a peer in Rust, the fuzzer and the tests use exactly the code the
//! passer uses.
//!
//! ```
//! use fdpass_core::frame::{self, Hello, Kind};
//!
//! let hello = Hello::announcing(128, 65536);
//! let bytes = hello.encode();
//! assert_eq!(bytes.len(), frame::HELLO_LEN);
//! assert_eq!(Hello::decode(&bytes), Ok(hello));
//!
//! let mut out = Vec::new();
//! frame::encode_message(&mut out, 1, 1, b"203.0.113.7:41512");
//! let header = frame::Header::decode(out[..8].try_into().unwrap()).unwrap();
//! assert_eq!((header.kind, header.fds, header.length), (Kind::Message, 1, 17));
//! ```

use crate::ProtocolError;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;
/// Bytes in a hello frame, header included.
pub const HELLO_LEN: usize = 24;
/// The hello's magic: `"fdpass\r\n"`.
pub const MAGIC: [u8; 8] = *b"fdpass\r\n";
/// The wire versions this crate speaks (lowest, highest).
pub const VERSIONS: (u8, u8) = (1, 1);
/// `kind` of a hello frame (`'H'`).
pub const KIND_HELLO: u8 = 0x48;
/// `kind` of a message frame (`'M'`).
pub const KIND_MESSAGE: u8 = 0x4D;
/// The hello's header: kind `'H'`, no descriptors, body of 16 bytes.
pub(crate) const HELLO_HEADER: [u8; HEADER_LEN] = [KIND_HELLO, 0, 0, 0, 0, 0, 0, 16];

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first frame each end sends: its versions and limits.
    Hello,
    /// Payload bytes and descriptors.
    Message,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Hello or message.
    pub kind: Kind,
    /// Descriptors that belong to this message.
    pub fds: u8,
    /// In the first frame of a `sendmsg`: the descriptors attached to it; else 0.
    pub batch_fds: u8,
    /// Bytes of body that follow the header.
    pub length: u32,
}

impl Header {
    /// Decodes a header; an unknown kind or a non-zero reserved byte is
    /// [`ProtocolError::BadFrame`].
    ///
    /// ```
    /// use fdpass_core::frame::{Header, Kind};
    /// let header = Header::decode(&[0x4D, 2, 2, 0, 0, 0, 0, 5]).unwrap();
    /// assert_eq!((header.kind, header.fds, header.batch_fds, header.length), (Kind::Message, 2, 2, 5));
    /// assert!(Header::decode(&[0x4D, 0, 0, 1, 0, 0, 0, 0]).is_err()); // reserved
    /// ```
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        let kind = match bytes[0] {
            KIND_HELLO => Kind::Hello,
            KIND_MESSAGE => Kind::Message,
            _ => return Err(ProtocolError::BadFrame),
        };
        if bytes[3] != 0 {
            return Err(ProtocolError::BadFrame);
        }
        Ok(Header {
            kind,
            fds: bytes[1],
            batch_fds: bytes[2],
            length: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        })
    }
}

/// Appends a message frame to `out`: its header (`fds` descriptors of its
/// own; `batch_fds` attached to the `sendmsg` it begins, or 0) and payload.
/// The caller keeps `payload` within the peer's limit (at most `u32::MAX`).
pub fn encode_message(out: &mut Vec<u8>, fds: u8, batch_fds: u8, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let [l0, l1, l2, l3] = length.to_be_bytes();
    out.extend_from_slice(&[KIND_MESSAGE, fds, batch_fds, 0, l0, l1, l2, l3]);
    if !payload.is_empty() {
        out.extend_from_slice(payload);
    }
}

/// What one end announces in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The lowest wire version it speaks.
    pub min_version: u8,
    /// The highest wire version it speaks.
    pub max_version: u8,
    /// The most descriptors it accepts in one `sendmsg` (and one message), 1 to 253.
    pub max_fds: u16,
    /// The most payload bytes it accepts in one message, at least 4096.
    pub max_payload: u32,
}

impl Hello {
    /// The hello of this crate's versions with these limits.
    pub fn announcing(max_fds: usize, max_payload: usize) -> Hello {
        Hello {
            min_version: VERSIONS.0,
            max_version: VERSIONS.1,
            max_fds: u16::try_from(max_fds).unwrap_or(u16::MAX),
            max_payload: u32::try_from(max_payload).unwrap_or(u32::MAX),
        }
    }

    /// The 24 bytes of this hello, header included.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..HEADER_LEN].copy_from_slice(&HELLO_HEADER);
        out[8..16].copy_from_slice(&MAGIC);
        out[16] = self.min_version;
        out[17] = self.max_version;
        out[18..20].copy_from_slice(&self.max_fds.to_be_bytes());
        out[20..24].copy_from_slice(&self.max_payload.to_be_bytes());
        out
    }

    /// Decodes a hello frame, header included. A first byte of `0x00` (the
    /// classic wire's byte) is [`ProtocolError::ClassicPeer`]; any other
    /// header, a wrong magic, or limits outside their ranges are
    /// [`ProtocolError::BadHello`]. Whether the versions overlap is
    /// [`Hello::version_with`]'s question.
    ///
    /// ```
    /// use fdpass_core::frame::Hello;
    /// use fdpass_core::ProtocolError;
    /// assert_eq!(Hello::decode(&[0u8; 24]), Err(ProtocolError::ClassicPeer));
    /// assert_eq!(Hello::decode(&[b'x'; 24]), Err(ProtocolError::BadHello));
    /// ```
    pub fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, ProtocolError> {
        if bytes[0] == 0 {
            return Err(ProtocolError::ClassicPeer);
        }
        if bytes[..HEADER_LEN] != HELLO_HEADER || bytes[8..16] != MAGIC {
            return Err(ProtocolError::BadHello);
        }
        let hello = Hello {
            min_version: bytes[16],
            max_version: bytes[17],
            max_fds: u16::from_be_bytes([bytes[18], bytes[19]]),
            max_payload: u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
        };
        let fds_ok = (1..=crate::SCM_MAX_FD).contains(&usize::from(hello.max_fds));
        let payload_ok = hello.max_payload as usize >= crate::config::MIN_PAYLOAD_LIMIT;
        if !fds_ok || !payload_ok || hello.min_version > hello.max_version {
            return Err(ProtocolError::BadHello);
        }
        Ok(hello)
    }

    /// The version two ends speak: the highest both do, or
    /// [`ProtocolError::UnsupportedVersion`] when their ranges do not overlap.
    ///
    /// ```
    /// use fdpass_core::frame::Hello;
    /// let ours = Hello::announcing(128, 65536);
    /// assert_eq!(ours.version_with(&ours), Ok(1));
    /// let future = Hello { min_version: 2, max_version: 3, ..ours };
    /// assert!(ours.version_with(&future).is_err());
    /// ```
    pub fn version_with(&self, peer: &Hello) -> Result<u8, ProtocolError> {
        let version = self.max_version.min(peer.max_version);
        if version < self.min_version || version < peer.min_version {
            return Err(ProtocolError::UnsupportedVersion {
                ours: (self.min_version, self.max_version),
                theirs: (peer.min_version, peer.max_version),
            });
        }
        Ok(version)
    }
}
