//! The pid file: which process serves now, replaced atomically.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `pid` and a newline to `path` atomically: into a temporary file
/// beside it (`<path>.<writer's pid>.tmp`), synced, then renamed over
/// `path` (`rename(2)` replaces atomically), so a reader sees the old
/// content or the new, never a part. Blocks on the file system: call it
/// from a blocking thread inside a runtime ([`write_off_runtime`]).
///
/// # Errors
///
/// Creating, writing, syncing or renaming failed (the temporary file is
/// removed then); for example [`io::ErrorKind::NotFound`] when the directory
/// does not exist.
pub(super) fn write(path: &Path, pid: u32) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{pid}")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// [`write`] on tokio's blocking threads (file I/O, as `tokio::fs` does it),
/// so that a slow `fsync` does not hold up the runtime.
///
/// # Errors
///
/// As [`write`]; a blocking task that did not complete is
/// [`io::ErrorKind::Other`].
pub(super) async fn write_off_runtime(path: PathBuf, pid: u32) -> io::Result<()> {
    match tokio::task::spawn_blocking(move || write(&path, pid)).await {
        Ok(written) => written,
        Err(e) => Err(io::Error::other(format!(
            "the pid file's write did not complete: {e}"
        ))),
    }
}
