//! Binding a listening socket at a path in a directory we may not trust.
//!
//! The directory the caller names may belong to another user, who can create,
//! rename and replace entries in it at any moment. So nothing here acts on a
//! path it checked earlier: every step goes through a descriptor, either of
//! the directory (`*at` calls on a name with no `/` in it, which cannot be
//! redirected by a symlink above it) or of the very inode that was checked.
//!
//! The steps, each with what makes it safe:
//!
//! 1. The parent directory is opened once; every later step is relative to
//!    that descriptor, so renaming the directory or an ancestor changes
//!    nothing for us.
//! 2. Whatever already has the name is looked at without following a link
//!    (`O_PATH | O_NOFOLLOW` on Linux). Anything but a socket is
//!    `AddrInUse`, as `bind(2)` says for any existing name. A socket is
//!    probed with a *non-blocking* connect to that inode (on Linux through
//!    `/proc/self/fd/N`, so the probe cannot be pointed elsewhere):
//!    `ECONNREFUSED` means nothing listens (stale); success or `EAGAIN` (a
//!    live listener with a full backlog, `net/unix/af_unix.c`,
//!    `unix_stream_connect`) or any other answer means in use.
//! 3. A staging directory, mode `0700`, is made beside the final name (same
//!    filesystem) and opened with `O_NOFOLLOW`; it is used only through that
//!    descriptor, after checking that it is ours and closed to others. The
//!    directory's owner may rename it away or plant another under its name:
//!    we keep working in ours.
//! 4. The socket gets its mode before it has a name: on Linux `unix_bind`
//!    creates the file with the socket inode's mode minus the umask
//!    (`net/unix/af_unix.c`, `unix_bind_bsd`: `S_IFSOCK |
//!    (SOCK_INODE(sock)->i_mode & ~current_umask())`; the inode starts at
//!    `0777`, `net/socket.c`, `sock_alloc`), and `fchmod` on the unbound
//!    socket sets that inode's mode. It is bound inside the staging directory
//!    (on Linux through `/proc/self/fd/N/`, which also keeps the address short
//!    whatever the real path's length), then given exactly the asked mode
//!    there (only we can reach that directory, so the name cannot be
//!    swapped), and set listening.
//! 5. It is moved into place with a rename that never replaces
//!    (`RENAME_NOREPLACE`, or `link(2)`, which never replaces either): a name
//!    that appeared meanwhile makes this `AddrInUse`, as `bind(2)` would. A
//!    stale socket is first moved *into* the staging directory, and removed
//!    only if it is the very inode found dead in step 2; anything else taken
//!    by that move is put back and the bind fails with `AddrInUse`.
//!
//! What the OS leaves possible: the owner of the directory (and root) can
//! always rename, remove or replace any entry in it, ours included, and so
//! can every user when the directory is writable to all and not sticky.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;
use rustix::net::SocketAddrUnix;

/// The staged socket's name inside the staging directory.
const STAGED: &str = "s";
/// Where a stale socket is moved while it is checked, before removal.
const DISPLACED: &str = "stale";
/// How many fresh staging names to try when one is taken.
const STAGING_ATTEMPTS: u32 = 16;

/// Creates a listening, non-blocking, close-on-exec socket bound at `path`
/// with permission bits `mode`. See the module docs for how.
pub(super) fn bind_listening(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    if mode & !0o777 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mode {mode:#o} has bits beyond the permission bits 0o777"),
        ));
    }
    if path.as_os_str().is_empty() {
        // `bind(2)` with an empty path autobinds an abstract address on
        // Linux; a listener here is always a file a client can find.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the listener's path is empty",
        ));
    }
    // The same limits as `bind(2)` (NUL bytes, the length of `sun_path`),
    // checked on the real path so that a client can connect to it.
    SocketAddrUnix::new(path).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} cannot be a socket address ({e}): no NUL bytes, shorter than sun_path",
                path.display()
            ),
        )
    })?;
    let (dir, name) = split(path);
    let Some(name) = name else {
        // "x/", "x/." or "x/..": no new name to create; `bind(2)` says why.
        return bind_plain(path, mode);
    };
    let parent = open_parent(dir)?;
    let found = existing(&parent, name, path)?;
    let staging = Staging::create(&parent, dir)?;
    let socket = new_socket(mode)?;
    staging.bind(&socket, mode)?;
    rustix::net::listen(&socket, 128)?;
    staging.place(&parent, name, found.as_ref(), path)?;
    Ok(socket)
}

/// The directory part (with its trailing `/`, or `.`) and the final name of
/// `path`; no final name when the path ends in `/`, `.` or `..`.
fn split(path: &Path) -> (&Path, Option<&OsStr>) {
    let bytes = path.as_os_str().as_bytes();
    let (dir, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&bytes[..=slash], &bytes[slash + 1..]),
        None => (&b"."[..], bytes),
    };
    let name = match name {
        b"" | b"." | b".." => None,
        name => Some(OsStr::from_bytes(name)),
    };
    (Path::new(OsStr::from_bytes(dir)), name)
}

/// A plain `bind(2)` at `path`, for paths that name no new entry; the
/// kernel's answer is the one `std`'s `UnixListener::bind` gives.
fn bind_plain(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let socket = new_socket(mode)?;
    rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&socket, 128)?;
    Ok(socket)
}

/// A new stream socket. On Linux its inode gets `mode` now, so that the file
/// `bind` creates is never wider than `mode` (see the module docs); other
/// systems take the file's mode from the umask alone.
fn new_socket(mode: u32) -> io::Result<OwnedFd> {
    let socket = crate::platform::socket(crate::platform::Atomicity::AtCreation, true)?;
    #[cfg(target_os = "linux")]
    rustix::fs::fchmod(&socket, Mode::from_raw_mode(mode))?;
    #[cfg(not(target_os = "linux"))]
    let _ = mode;
    Ok(socket)
}

/// The parent directory, opened once (following links above the final name,
/// as `bind(2)` does).
fn open_parent(dir: &Path) -> io::Result<OwnedFd> {
    // O_PATH needs no read permission on the directory, only search, like
    // bind(2) itself.
    #[cfg(target_os = "linux")]
    let access = OFlags::PATH;
    #[cfg(not(target_os = "linux"))]
    let access = OFlags::RDONLY;
    Ok(rustix::fs::openat(
        CWD,
        dir,
        access | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn same_file(a: &Stat, b: &Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn in_use(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{} is in use: {why}", path.display()),
    )
}

/// What has `name` in `parent` now: nothing (`None`), a stale socket (its
/// identity, to be replaced only if still the same inode), or an error:
/// `AddrInUse` for anything else, a live listener included.
fn existing(parent: &OwnedFd, name: &OsStr, path: &Path) -> io::Result<Option<Stat>> {
    #[cfg(target_os = "linux")]
    {
        // Pin the inode so that the type check and the probe see the same
        // one; O_NOFOLLOW with O_PATH opens a symlink itself, not its target.
        let entry = match rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
            Ok(entry) => entry,
        };
        let stat = rustix::fs::fstat(&entry)?;
        refuse_non_socket(&stat, path)?;
        use std::os::fd::AsRawFd;
        let pinned = format!("/proc/self/fd/{}", entry.as_raw_fd());
        let answer = match probe(Path::new(&pinned)) {
            // No /proc: probe by the path; the identity check at replacement
            // still guards against a swap.
            Err(Errno::NOENT) => probe(path),
            answer => answer,
        };
        judge(answer, stat, path)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
            Ok(stat) => stat,
        };
        refuse_non_socket(&stat, path)?;
        judge(probe(path), stat, path)
    }
}

fn refuse_non_socket(stat: &Stat, path: &Path) -> io::Result<()> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Socket => Ok(()),
        other => Err(in_use(
            path,
            format!("it exists and is a {other:?}, not a socket; it is left as it is"),
        )),
    }
}

/// A non-blocking connect to `target`: never waits, whatever listens there.
fn probe(target: &Path) -> Result<(), Errno> {
    let socket = crate::platform::socket(crate::platform::Atomicity::AtCreation, true)?;
    let addr = SocketAddrUnix::new(target)?;
    loop {
        match rustix::net::connect(&socket, &addr) {
            Err(Errno::INTR) => continue,
            answer => return answer,
        }
    }
}

/// Stale only when the kernel refused the connection: no socket listens on
/// that inode. Anything else (accepted, `EAGAIN` from a full backlog, a
/// socket of another type, no permission to ask) leaves it in use.
fn judge(answer: Result<(), Errno>, stat: Stat, path: &Path) -> io::Result<Option<Stat>> {
    match answer {
        Err(Errno::CONNREFUSED) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Ok(()) => Err(in_use(path, "a process is listening there")),
        Err(Errno::AGAIN) => Err(in_use(
            path,
            "a process is listening there (its backlog is full)",
        )),
        Err(e) => Err(in_use(
            path,
            format!("a socket is there and a connection to it failed with {e}, so it may be live; it is left as it is"),
        )),
    }
}

/// A directory only we can enter, beside the final name, used only through
/// its descriptor.
struct Staging<'p> {
    parent: &'p OwnedFd,
    name: OsString,
    /// The textual path, for systems without `/proc/self/fd`.
    path: PathBuf,
    fd: OwnedFd,
    stat: Stat,
}

impl<'p> Staging<'p> {
    fn create(parent: &'p OwnedFd, dir: &Path) -> io::Result<Staging<'p>> {
        for _ in 0..STAGING_ATTEMPTS {
            let name = OsString::from(format!(".fdpass-{:016x}", random()));
            match rustix::fs::mkdirat(parent, &name, Mode::from_raw_mode(0o700)) {
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
            let fd = rustix::fs::openat(
                parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let stat = rustix::fs::fstat(&fd)?;
            // What we opened must be a directory nobody else can change:
            // ours, with no access for group or others. The parent's owner
            // could have swapped in another between mkdirat and openat.
            let private =
                stat.st_uid == rustix::process::geteuid().as_raw() && stat.st_mode & 0o077 == 0;
            if !private {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the staging directory made in {} was replaced by another user's",
                        dir.display()
                    ),
                ));
            }
            return Ok(Staging {
                parent,
                path: dir.join(&name),
                name,
                fd,
                stat,
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "could not create a staging directory in {}: every name tried was taken",
                dir.display()
            ),
        ))
    }

    /// Binds `socket` inside the staging directory and gives the file
    /// exactly `mode`.
    fn bind(&self, socket: &OwnedFd, mode: u32) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let through_fd = format!("/proc/self/fd/{}/{STAGED}", self.fd.as_raw_fd());
            match rustix::net::bind(socket, &SocketAddrUnix::new(through_fd.as_str())?) {
                Err(Errno::NOENT) => self.bind_by_path(socket)?,
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
        }
        #[cfg(not(target_os = "linux"))]
        self.bind_by_path(socket)?;
        // Only we can create or rename entries in the staging directory, so
        // this name is the socket just bound.
        rustix::fs::chmodat(
            &self.fd,
            STAGED,
            // `mode_t` is 16 bits on macOS and FreeBSD; `bind` refused
            // anything beyond the permission bits before this point.
            Mode::from_bits_truncate(mode as rustix::fs::RawMode),
            AtFlags::empty(),
        )?;
        Ok(())
    }

    /// Without `/proc/self/fd`: bind by the textual path, then make sure the
    /// socket landed in our directory (the parent's owner may have renamed
    /// it away and planted another under its name).
    fn bind_by_path(&self, socket: &OwnedFd) -> io::Result<()> {
        let textual = self.path.join(STAGED);
        rustix::net::bind(socket, &SocketAddrUnix::new(&textual)?)?;
        match rustix::fs::statat(&self.fd, STAGED, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Socket => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the staging directory {} was replaced by another user's while binding",
                    self.path.display()
                ),
            )),
        }
    }

    /// Moves the staged socket to `name` in `parent`, replacing only the
    /// stale socket `found` (the same inode) and nothing else.
    fn place(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        found: Option<&Stat>,
        path: &Path,
    ) -> io::Result<()> {
        if let Some(stale) = found {
            self.remove_stale(parent, name, stale, path)?;
        }
        match move_noreplace(&self.fd, OsStr::new(STAGED), parent, name) {
            Err(Errno::EXIST) => Err(in_use(path, "something was created there while binding")),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(()),
        }
    }

    /// Takes whatever has `name` into the staging directory (one atomic
    /// rename), and deletes it only if it is the inode found stale.
    fn remove_stale(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        stale: &Stat,
        path: &Path,
    ) -> io::Result<()> {
        // Narrow the window in which a socket that replaced the stale one
        // since the probe could be taken: look again just before.
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(now) if !same_file(&now, stale) => {
                return Err(in_use(
                    path,
                    "it was replaced by another process while binding",
                ))
            }
            Ok(_) => {}
        }
        match rustix::fs::renameat(parent, name, &self.fd, DISPLACED) {
            Err(Errno::NOENT) => return Ok(()),
            // A sticky directory where the stale socket is another user's:
            // bind(2) would say in use, and it is not ours to remove.
            Err(Errno::PERM | Errno::ACCESS) => {
                return Err(in_use(
                    path,
                    "a stale socket is there that this user may not remove",
                ))
            }
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
        let taken = rustix::fs::statat(&self.fd, DISPLACED, AtFlags::SYMLINK_NOFOLLOW)?;
        if same_file(&taken, stale) {
            rustix::fs::unlinkat(&self.fd, DISPLACED, AtFlags::empty())?;
            return Ok(());
        }
        // Someone replaced the stale socket after it was probed: that entry
        // is theirs. Put it back where it was.
        match move_noreplace(&self.fd, OsStr::new(DISPLACED), parent, name) {
            Ok(()) => Err(in_use(path, "it was replaced by another process while binding")),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} was replaced by another process while binding, and then once more; the entry \
                     displaced from it could not be put back ({e}) and is at {}",
                    path.display(),
                    self.path.join(DISPLACED).display()
                ),
            )),
        }
    }
}

impl Drop for Staging<'_> {
    /// Removes the (by now empty) staging directory if its name is still
    /// ours; if the parent's owner renamed it away, it stays where they put
    /// it, empty.
    fn drop(&mut self) {
        let _ = rustix::fs::unlinkat(&self.fd, STAGED, AtFlags::empty());
        if let Ok(now) = rustix::fs::statat(self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            if same_file(&now, &self.stat) {
                let _ = rustix::fs::unlinkat(self.parent, &self.name, AtFlags::REMOVEDIR);
            }
        }
    }
}

/// Renames `from` (in `from_dir`) to `to` (in `to_dir`) unless `to` exists
/// (`EEXIST` then): `RENAME_NOREPLACE` where the OS has it, else `link(2)`
/// and `unlink(2)`, which never replace either.
fn move_noreplace(
    from_dir: &OwnedFd,
    from: &OsStr,
    to_dir: &OwnedFd,
    to: &OsStr,
) -> Result<(), Errno> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    match rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        // A filesystem without the flag: fall through to link + unlink.
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
        answer => return answer,
    }
    rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
    rustix::fs::unlinkat(from_dir, from, AtFlags::empty())
}

/// An unpredictable number for staging names (the standard library's
/// per-process random hash keys).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::split;
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn split_keeps_the_directory_and_the_final_name() {
        assert_eq!(
            split(Path::new("/run/x/sock")),
            (Path::new("/run/x/"), Some(OsStr::new("sock")))
        );
        assert_eq!(
            split(Path::new("sock")),
            (Path::new("."), Some(OsStr::new("sock")))
        );
        assert_eq!(
            split(Path::new("/sock")),
            (Path::new("/"), Some(OsStr::new("sock")))
        );
        assert_eq!(split(Path::new("a/")).1, None);
        assert_eq!(split(Path::new("a/.")).1, None);
        assert_eq!(split(Path::new("a/..")).1, None);
        assert_eq!(split(Path::new("..")).1, None);
    }
}
