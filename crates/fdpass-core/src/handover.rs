//! Named descriptors: a set of descriptors, each with a name and a little
//! metadata, carried in one native message and received as a map by name.
//!
//! A process handing its listeners and files to a successor sends them all
//! in one [`Message`]: the payload names each descriptor, in the order the
//! descriptors travel. A message arrives whole or not at all (docs/wire.md),
//! so the receiver gets the whole set or a typed [`NamedFdsError`], never a
//! part of it. The payload's bytes are specified in `docs/handover.md`, with
//! a version byte, so that a peer in another language can build or read it.
//!
//! [`decode_payload`] is a pure function of the payload bytes and the number
//! of descriptors that came with them: every malformed input is a typed
//! error, never a panic (a fuzz target can feed it anything).
//!
//! ```
//! use fdpass_core::handover::NamedFds;
//! use fdpass_core::{Config, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (log, _log_peer) = std::io::pipe()?;
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let address = listener.local_addr()?.to_string();
//!
//! let mut set = NamedFds::new();
//! set.insert_with_meta("http", listener.into(), address.as_bytes())?;
//! set.insert("log", log.into())?;
//! let message = set.into_message()?;
//!
//! // ... sent with `push_send_message`, received whole by the successor ...
//! let mut received = NamedFds::from_message(message)?;
//! assert_eq!(received.meta("http"), Some(address.as_bytes()));
//! let http = std::net::TcpListener::from(received.take("http").expect("sent"));
//! assert_eq!(http.local_addr()?.to_string(), address);
//! assert!(received.take("log").is_some());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;

use crate::Message;

/// The version of the payload format [`NamedFds::into_message`] writes and
/// [`decode_payload`] reads: the payload's first byte.
///
/// ```
/// assert_eq!(fdpass_core::handover::FORMAT_VERSION, 1);
/// ```
pub const FORMAT_VERSION: u8 = 1;

/// The most descriptors one named set holds: the most one message can carry
/// (`SCM_MAX_FD`, 253 on Linux; the native wire's `fds` field).
///
/// ```
/// assert_eq!(fdpass_core::handover::MAX_ENTRIES, 253);
/// ```
pub const MAX_ENTRIES: usize = 253;

/// The longest name, in bytes (systemd's limit on a descriptor name, so that
/// every name can also travel in `LISTEN_FDNAMES`).
///
/// ```
/// assert_eq!(fdpass_core::handover::MAX_NAME_LEN, 255);
/// ```
pub const MAX_NAME_LEN: usize = 255;

/// The most metadata bytes one entry carries (its length is a `u16`).
///
/// ```
/// assert_eq!(fdpass_core::handover::MAX_META_LEN, 65535);
/// ```
pub const MAX_META_LEN: usize = u16::MAX as usize;

/// Why a named set could not be built, encoded or decoded. Decoding errors
/// say where in the payload the fault is (`offset`, in bytes from its start).
///
/// ```
/// use fdpass_core::handover::{decode_payload, NamedFdsError};
///
/// assert_eq!(decode_payload(&[2, 0], 0).unwrap_err(), NamedFdsError::UnsupportedVersion { version: 2 });
/// assert!(NamedFdsError::Empty.to_string().contains("empty"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NamedFdsError {
    /// The payload is empty: it is not a named set at all.
    Empty,
    /// The payload's version byte is not one this build reads
    /// ([`FORMAT_VERSION`]).
    UnsupportedVersion {
        /// The version the payload announced.
        version: u8,
    },
    /// The payload ends inside its header or an entry.
    CutShort {
        /// Where the missing bytes should have started.
        offset: usize,
    },
    /// The payload names a different number of descriptors than arrived with
    /// it.
    CountMismatch {
        /// Entries the payload announces.
        announced: usize,
        /// Descriptors that came with the message.
        descriptors: usize,
    },
    /// A name is empty, longer than [`MAX_NAME_LEN`], or holds a byte other
    /// than printable ASCII (`0x20` to `0x7E`) or a `:` (systemd's rule for
    /// descriptor names, `LISTEN_FDNAMES` being `:`-separated).
    BadName {
        /// The entry's index.
        index: usize,
        /// The name's bytes, lossily as text.
        name: String,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Metadata longer than [`MAX_META_LEN`] (when building a set).
    MetaTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries {
        /// How many.
        count: usize,
    },
    /// The reserved byte (offset 1) is not zero: written by a later format
    /// that this build does not know.
    ReservedNotZero {
        /// Its value.
        value: u8,
    },
    /// Bytes follow the last entry.
    TrailingBytes {
        /// Where they start.
        offset: usize,
    },
}

impl fmt::Display for NamedFdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamedFdsError::Empty => write!(
                f,
                "the message's payload is empty, so it is not a named descriptor set; check that the peer sends one"
            ),
            NamedFdsError::UnsupportedVersion { version } => write!(
                f,
                "named descriptor set of format version {version}, this build reads version {FORMAT_VERSION}; upgrade the older end"
            ),
            NamedFdsError::CutShort { offset } => write!(
                f,
                "named descriptor set cut short at byte {offset}; the peer wrote a malformed payload"
            ),
            NamedFdsError::CountMismatch { announced, descriptors } => write!(
                f,
                "named descriptor set announces {announced} entries but {descriptors} descriptors came with it; the peer wrote a malformed message"
            ),
            NamedFdsError::BadName { index, name } => write!(
                f,
                "entry {index} has an invalid name {name:?}: use 1 to 255 printable ASCII characters other than ':'"
            ),
            NamedFdsError::DuplicateName { name } => write!(
                f,
                "the name {name:?} appears twice; names in a set must be unique"
            ),
            NamedFdsError::MetaTooLong { len } => write!(
                f,
                "metadata of {len} bytes; at most {MAX_META_LEN} fit in an entry"
            ),
            NamedFdsError::TooManyEntries { count } => write!(
                f,
                "{count} descriptors in one set; at most {MAX_ENTRIES} fit in one message, split the set"
            ),
            NamedFdsError::ReservedNotZero { value } => write!(
                f,
                "named descriptor set with reserved byte {value:#04x}, which this build does not know; upgrade the older end"
            ),
            NamedFdsError::TrailingBytes { offset } => write!(
                f,
                "bytes after the last entry of a named descriptor set, from byte {offset}; the peer wrote a malformed payload"
            ),
        }
    }
}

impl std::error::Error for NamedFdsError {}

impl From<NamedFdsError> for std::io::Error {
    /// [`std::io::ErrorKind::InvalidData`], with the error's message.
    fn from(e: NamedFdsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// One decoded entry of a payload: the name and metadata of the descriptor
/// at the same index in the message.
///
/// ```
/// use fdpass_core::handover::{decode_payload, EntryHeader};
///
/// let payload = [1, 0, 0, 1, 1, b'a', 0, 2, 7, 8];
/// let entries = decode_payload(&payload, 1)?;
/// assert_eq!(entries, vec![EntryHeader { name: "a".into(), meta: vec![7, 8] }]);
/// # Ok::<(), fdpass_core::handover::NamedFdsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The descriptor's name (printable ASCII, no `:`, 1 to 255 bytes).
    pub name: String,
    /// Its metadata: any bytes, as the sender wrote them.
    pub meta: Vec<u8>,
}

/// Whether `name` is a valid descriptor name: 1 to [`MAX_NAME_LEN`] bytes of
/// printable ASCII (`0x20` to `0x7E`) other than `:`, as systemd requires of
/// `FDNAME=` and `LISTEN_FDNAMES`.
///
/// ```
/// use fdpass_core::handover::is_valid_name;
/// assert!(is_valid_name("http"));
/// assert!(!is_valid_name("a:b"));
/// assert!(!is_valid_name(""));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    valid_name_bytes(name.as_bytes())
}

fn valid_name_bytes(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .iter()
            .all(|&b| (0x20..=0x7E).contains(&b) && b != b':')
}

/// Reads a named set's payload (format in `docs/handover.md`) that arrived
/// with `descriptors` descriptors: one [`EntryHeader`] per descriptor, in the
/// order the descriptors arrived. Pure: no descriptor is touched.
///
/// # Errors
///
/// Every fault of the payload is a [`NamedFdsError`]: `Empty`,
/// `UnsupportedVersion`, `ReservedNotZero`, `CutShort`, `CountMismatch`,
/// `TooManyEntries`, `BadName`, `DuplicateName`, `TrailingBytes`.
///
/// ```
/// use fdpass_core::handover::{decode_payload, NamedFdsError};
///
/// // Version 1, one entry, name "a", no metadata.
/// assert_eq!(decode_payload(&[1, 0, 0, 1, 1, b'a', 0, 0], 1)?.len(), 1);
/// // The same payload with no descriptor attached.
/// assert_eq!(
///     decode_payload(&[1, 0, 0, 1, 1, b'a', 0, 0], 0),
///     Err(NamedFdsError::CountMismatch { announced: 1, descriptors: 0 })
/// );
/// assert_eq!(decode_payload(&[1, 0, 0, 1], 1), Err(NamedFdsError::CutShort { offset: 4 }));
/// # Ok::<(), NamedFdsError>(())
/// ```
pub fn decode_payload(
    payload: &[u8],
    descriptors: usize,
) -> Result<Vec<EntryHeader>, NamedFdsError> {
    let mut reader = Reader { payload, offset: 0 };
    let version = reader.bytes(1).map_err(|_| NamedFdsError::Empty)?[0];
    if version != FORMAT_VERSION {
        return Err(NamedFdsError::UnsupportedVersion { version });
    }
    let header = reader.bytes(3)?;
    if header[0] != 0 {
        // Reserved: a later version may give it a meaning.
        return Err(NamedFdsError::ReservedNotZero { value: header[0] });
    }
    let announced = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if announced != descriptors {
        return Err(NamedFdsError::CountMismatch {
            announced,
            descriptors,
        });
    }
    if announced > MAX_ENTRIES {
        return Err(NamedFdsError::TooManyEntries { count: announced });
    }
    let mut entries: Vec<EntryHeader> = Vec::with_capacity(announced);
    for index in 0..announced {
        let name_len = usize::from(reader.bytes(1)?[0]);
        let name = reader.bytes(name_len)?;
        if !valid_name_bytes(name) {
            return Err(NamedFdsError::BadName {
                index,
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        // Valid names are ASCII, so this never fails.
        let name = String::from_utf8_lossy(name).into_owned();
        if entries.iter().any(|e| e.name == name) {
            return Err(NamedFdsError::DuplicateName { name });
        }
        let meta_len = reader.bytes(2)?;
        let meta_len = usize::from(u16::from_be_bytes([meta_len[0], meta_len[1]]));
        let meta = reader.bytes(meta_len)?.to_vec();
        entries.push(EntryHeader { name, meta });
    }
    if reader.offset != payload.len() {
        return Err(NamedFdsError::TrailingBytes {
            offset: reader.offset,
        });
    }
    Ok(entries)
}

/// Writes the payload for `entries` (format in `docs/handover.md`), the
/// inverse of [`decode_payload`].
///
/// # Errors
///
/// `TooManyEntries`, `BadName`, `DuplicateName`, `MetaTooLong`.
///
/// ```
/// use fdpass_core::handover::{decode_payload, encode_payload, EntryHeader};
///
/// let entries = vec![EntryHeader { name: "http".into(), meta: b"[::]:80".to_vec() }];
/// let payload = encode_payload(&entries)?;
/// assert_eq!(decode_payload(&payload, 1)?, entries);
/// # Ok::<(), fdpass_core::handover::NamedFdsError>(())
/// ```
pub fn encode_payload(entries: &[EntryHeader]) -> Result<Vec<u8>, NamedFdsError> {
    if entries.len() > MAX_ENTRIES {
        return Err(NamedFdsError::TooManyEntries {
            count: entries.len(),
        });
    }
    let mut payload = vec![FORMAT_VERSION, 0];
    // At most 253: fits.
    payload.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for (index, entry) in entries.iter().enumerate() {
        if !is_valid_name(&entry.name) {
            return Err(NamedFdsError::BadName {
                index,
                name: entry.name.clone(),
            });
        }
        if entries[..index].iter().any(|e| e.name == entry.name) {
            return Err(NamedFdsError::DuplicateName {
                name: entry.name.clone(),
            });
        }
        let meta_len = u16::try_from(entry.meta.len()).map_err(|_| NamedFdsError::MetaTooLong {
            len: entry.meta.len(),
        })?;
        // A valid name is at most 255 bytes: fits.
        payload.push(entry.name.len() as u8);
        payload.extend_from_slice(entry.name.as_bytes());
        payload.extend_from_slice(&meta_len.to_be_bytes());
        payload.extend_from_slice(&entry.meta);
    }
    Ok(payload)
}

struct Reader<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], NamedFdsError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.payload.len())
            .ok_or(NamedFdsError::CutShort {
                offset: self.offset,
            })?;
        let bytes = &self.payload[self.offset..end];
        self.offset = end;
        Ok(bytes)
    }
}

/// A set of descriptors by name, each with metadata: built to be sent with
/// [`into_message`](Self::into_message), or received with
/// [`from_message`](Self::from_message). Descriptors left in the set when it
/// is dropped are closed.
///
/// ```
/// use fdpass_core::handover::NamedFds;
///
/// let (r, _w) = std::io::pipe()?;
/// let mut set = NamedFds::new();
/// set.insert("input", r.into())?;
/// assert_eq!(set.names().collect::<Vec<_>>(), ["input"]);
/// assert!(set.take("input").is_some());
/// assert!(set.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct NamedFds {
    entries: BTreeMap<String, (OwnedFd, Vec<u8>)>,
}

impl NamedFds {
    /// An empty set.
    ///
    /// ```
    /// assert!(fdpass_core::handover::NamedFds::new().is_empty());
    /// ```
    pub fn new() -> NamedFds {
        NamedFds::default()
    }

    /// Adds `fd` under `name`, with no metadata.
    ///
    /// # Errors
    ///
    /// `BadName` (see [`is_valid_name`]), `DuplicateName`, `TooManyEntries`
    /// (beyond [`MAX_ENTRIES`]); `fd` is closed then.
    ///
    /// ```
    /// use fdpass_core::handover::{NamedFds, NamedFdsError};
    /// let (a, b) = std::io::pipe()?;
    /// let mut set = NamedFds::new();
    /// set.insert("pipe", a.into())?;
    /// assert!(matches!(set.insert("pipe", b.into()), Err(NamedFdsError::DuplicateName { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&mut self, name: &str, fd: OwnedFd) -> Result<(), NamedFdsError> {
        self.insert_with_meta(name, fd, Vec::new())
    }

    /// Adds `fd` under `name` with `meta` (for example the address a
    /// listener is bound to, or the name of a log file).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert), and `MetaTooLong` beyond
    /// [`MAX_META_LEN`] bytes; `fd` is closed then.
    ///
    /// ```
    /// use fdpass_core::handover::NamedFds;
    /// let (r, _w) = std::io::pipe()?;
    /// let mut set = NamedFds::new();
    /// set.insert_with_meta("input", r.into(), b"v2".to_vec())?;
    /// assert_eq!(set.meta("input"), Some(&b"v2"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_with_meta(
        &mut self,
        name: &str,
        fd: OwnedFd,
        meta: impl Into<Vec<u8>>,
    ) -> Result<(), NamedFdsError> {
        let meta = meta.into();
        if !is_valid_name(name) {
            return Err(NamedFdsError::BadName {
                index: self.entries.len(),
                name: name.to_owned(),
            });
        }
        if self.entries.contains_key(name) {
            return Err(NamedFdsError::DuplicateName {
                name: name.to_owned(),
            });
        }
        if meta.len() > MAX_META_LEN {
            return Err(NamedFdsError::MetaTooLong { len: meta.len() });
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(NamedFdsError::TooManyEntries {
                count: self.entries.len() + 1,
            });
        }
        self.entries.insert(name.to_owned(), (fd, meta));
        Ok(())
    }

    /// Removes and returns the descriptor named `name`.
    ///
    /// ```
    /// let mut set = fdpass_core::handover::NamedFds::new();
    /// assert!(set.take("missing").is_none());
    /// ```
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        self.entries.remove(name).map(|(fd, _meta)| fd)
    }

    /// Removes and returns the descriptor named `name` with its metadata.
    ///
    /// ```
    /// use fdpass_core::handover::NamedFds;
    /// let (r, _w) = std::io::pipe()?;
    /// let mut set = NamedFds::new();
    /// set.insert_with_meta("input", r.into(), b"m".to_vec())?;
    /// let (_fd, meta) = set.take_with_meta("input").expect("inserted");
    /// assert_eq!(meta, b"m");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_with_meta(&mut self, name: &str) -> Option<(OwnedFd, Vec<u8>)> {
        self.entries.remove(name)
    }

    /// The metadata of the descriptor named `name`.
    ///
    /// ```
    /// assert!(fdpass_core::handover::NamedFds::new().meta("x").is_none());
    /// ```
    pub fn meta(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(|(_fd, meta)| meta.as_slice())
    }

    /// The descriptor named `name`, borrowed.
    ///
    /// ```
    /// assert!(fdpass_core::handover::NamedFds::new().get("x").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.entries.get(name).map(|(fd, _meta)| fd.as_fd())
    }

    /// The names in the set, in byte order.
    ///
    /// ```
    /// assert_eq!(fdpass_core::handover::NamedFds::new().names().count(), 0);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many descriptors the set holds.
    ///
    /// ```
    /// assert_eq!(fdpass_core::handover::NamedFds::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no descriptor.
    ///
    /// ```
    /// assert!(fdpass_core::handover::NamedFds::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A copy of the set: every descriptor duplicated (`F_DUPFD_CLOEXEC`),
    /// metadata copied. A process hands a copy on and keeps serving with its
    /// own until its successor is ready.
    ///
    /// # Errors
    ///
    /// The `dup` failed (for example `EMFILE`); the copies made so far are
    /// closed.
    ///
    /// ```
    /// use fdpass_core::handover::NamedFds;
    /// let (r, _w) = std::io::pipe()?;
    /// let mut set = NamedFds::new();
    /// set.insert("input", r.into())?;
    /// let copy = set.try_clone()?;
    /// assert_eq!(copy.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> std::io::Result<NamedFds> {
        let mut entries = BTreeMap::new();
        for (name, (fd, meta)) in &self.entries {
            entries.insert(name.clone(), (fd.try_clone()?, meta.clone()));
        }
        Ok(NamedFds { entries })
    }

    /// The message that carries the set: the payload names each descriptor,
    /// in name order, and the descriptors travel in the same order.
    ///
    /// # Errors
    ///
    /// None today for a set built with `insert` (which checks every rule);
    /// the `Result` leaves room for a later format's limits.
    ///
    /// ```
    /// let message = fdpass_core::handover::NamedFds::new().into_message()?;
    /// assert_eq!(message.payload, [1, 0, 0, 0]);
    /// # Ok::<(), fdpass_core::handover::NamedFdsError>(())
    /// ```
    pub fn into_message(self) -> Result<Message, NamedFdsError> {
        let mut headers = Vec::with_capacity(self.entries.len());
        let mut fds = Vec::with_capacity(self.entries.len());
        for (name, (fd, meta)) in self.entries {
            headers.push(EntryHeader { name, meta });
            fds.push(fd);
        }
        let payload = encode_payload(&headers)?;
        Ok(Message::new(payload, fds))
    }

    /// The set a received `message` carries.
    ///
    /// # Errors
    ///
    /// Any fault of the payload ([`decode_payload`]); every descriptor that
    /// came with the message is then let go of through
    /// [`disposal`](crate::disposal) (a peer chose them, and their close may
    /// block), so nothing is half-delivered or leaked.
    ///
    /// ```
    /// use fdpass_core::handover::{NamedFds, NamedFdsError};
    /// use fdpass_core::Message;
    /// let (r, _w) = std::io::pipe()?;
    /// let bad = Message::new(vec![1, 0, 0, 0], vec![r.into()]);
    /// assert!(matches!(NamedFds::from_message(bad), Err(NamedFdsError::CountMismatch { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_message(message: Message) -> Result<NamedFds, NamedFdsError> {
        match decode_payload(&message.payload, message.fds.len()) {
            Ok(headers) => Ok(NamedFds {
                entries: headers
                    .into_iter()
                    .zip(message.fds)
                    .map(|(header, fd)| (header.name, (fd, header.meta)))
                    .collect(),
            }),
            Err(e) => {
                message.fds.into_iter().for_each(crate::disposal::dispose);
                Err(e)
            }
        }
    }
}

impl IntoIterator for NamedFds {
    type Item = (String, OwnedFd, Vec<u8>);
    type IntoIter = std::iter::Map<
        std::collections::btree_map::IntoIter<String, (OwnedFd, Vec<u8>)>,
        fn((String, (OwnedFd, Vec<u8>))) -> (String, OwnedFd, Vec<u8>),
    >;

    /// Every entry as `(name, descriptor, metadata)`, in name order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries
            .into_iter()
            .map(|(name, (fd, meta))| (name, fd, meta))
    }
}
