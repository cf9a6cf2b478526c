//! The pid file: which process serves now, replaced atomically.

use std::io::{self, Write};
use std::path::Path;

/// Writes `pid` and a newline to `path` atomically: into a temporary file
/// beside it (`<path>.<writer's pid>.tmp`), synced, then renamed over
/// `path` (`rename(2)` replaces atomically), so a reader sees the old
/// content or the new, never a part.
///
/// # Errors
///
/// Creating, writing, syncing or renaming failed (the temporary file is
/// removed then); for example [`io::ErrorKind::NotFound`] when the directory
/// does not exist.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fdpass-doc-write-pid-{}", std::process::id()));
/// fdpass_core::upgrade::write_pid_file(&path, 4242)?;
/// assert_eq!(std::fs::read_to_string(&path)?, "4242\n");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
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
