//! The owner of the directory a listener is bound in attacks at every point
//! of `bind`: the binding process is stopped (ptrace) at each of its system
//! calls in turn, one run per system call, and while it is stopped `nobody`,
//! who owns the directory, renames bind's staging directory away, plants its
//! own under the same name with symlinks to a root-owned file under every
//! name bind uses inside it. Whatever the point, the root-owned file keeps
//! its mode and contents, and a bind that succeeds serves its own socket at
//! the path.
//!
//! Linux only (ptrace); needs root to act as `nobody`.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use common::{results, role, self_command, TempDir};
use fdpass_core::socket::{connect, Listener};

const NOBODY: u32 = 65534;
const PATH_VAR: &str = "FDPASS_RACE_PATH";
const SECRET_VAR: &str = "FDPASS_RACE_SECRET";

/// Names the staging directory's entries may have, old and new layouts.
const INNER_NAMES: [&str; 4] = ["s", "sock", "stale", "x"];

/// The outcome of one run.
struct Run {
    /// Whether the attack happened before bind returned (false: bind made
    /// fewer system calls than the stop asked for).
    attacked: bool,
    /// How many staging directories the attacker renamed away.
    renamed: usize,
    /// What the binding child reported.
    report: String,
}

#[test]
fn renaming_the_staging_directory_at_any_system_call_of_bind_changes_nothing_else() {
    if role().is_some() {
        return; // The children below run their own tests.
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("this test acts as uid {NOBODY} and traces a child; it needs root; not run");
        return;
    }
    if std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").is_ok_and(|s| s.trim() == "3")
    {
        eprintln!("ptrace is disabled on this system (Yama scope 3); not run");
        return;
    }
    let mut renamed_total = 0;
    let mut stop = 1;
    loop {
        let run = attack_at(stop);
        if !run.attacked {
            break;
        }
        renamed_total += run.renamed;
        assert!(
            run.report == "bound=ok reachable=yes"
                || run.report.starts_with("bound=err kind=PermissionDenied")
                || run.report.starts_with("bound=err kind=AddrInUse"),
            "stop {stop}: {}",
            run.report
        );
        stop += 1;
        assert!(stop < 2000, "bind made too many system calls");
    }
    eprintln!(
        "attacked at {} system-call stops; {renamed_total} staging directories renamed",
        stop - 1
    );
    assert!(
        renamed_total > 0,
        "no run found a staging directory to rename: the test did not attack"
    );
}

/// One run: start the binder, stop it at its `stop`-th system-call stop,
/// attack, let it finish, and check the root-owned file.
fn attack_at(stop: usize) -> Run {
    let scratch = TempDir::new("race");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = scratch.path().join("hostile");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::lchown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let secret = scratch.path().join("secret");
    std::fs::write(&secret, b"root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut child = self_command("traced_binder", "traced-binder")
        .env(PATH_VAR, dir.join("sock"))
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let tid = read_tid(&mut stdout);

    let mut status = 0;
    wait(tid, &mut status);
    assert!(libc::WIFSTOPPED(status), "the binder did not stop first");
    trace(
        libc::PTRACE_SETOPTIONS,
        tid,
        libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
    );
    let mut count = 0;
    let mut attacked = false;
    let mut renamed = 0;
    let mut signal = 0;
    loop {
        trace(libc::PTRACE_SYSCALL, tid, signal);
        signal = 0;
        wait(tid, &mut status);
        assert!(libc::WIFSTOPPED(status), "the binder ended while traced");
        match libc::WSTOPSIG(status) {
            s if s == libc::SIGTRAP | 0x80 => {
                count += 1;
                if count == stop {
                    renamed = rename_staging_as_nobody(&dir, &secret);
                    attacked = true;
                }
            }
            // The binder's marker: bind has returned.
            libc::SIGSTOP => {
                trace(libc::PTRACE_DETACH, tid, 0);
                break;
            }
            other => signal = other,
        }
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let exit = child.wait().unwrap();
    let output = std::process::Output {
        status: exit,
        stdout: rest.into_bytes(),
        stderr: stderr.into_bytes(),
    };
    let report = results(&output).remove(0);

    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!(
        (
            meta.mode() & 0o7777,
            meta.uid(),
            std::fs::read(&secret).unwrap()
        ),
        (0o600, 0, b"root only".to_vec()),
        "stop {stop}: the root-owned file was changed ({report})"
    );
    Run {
        attacked,
        renamed,
        report,
    }
}

/// The first line the binder prints: the id of the thread it binds on.
fn read_tid(stdout: &mut impl BufRead) -> i32 {
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the binder said nothing"
        );
        if let Some(tid) = line.find("TID ").map(|at| &line[at + 4..]) {
            return tid.trim().parse().unwrap();
        }
    }
}

fn wait(tid: i32, status: &mut i32) {
    // SAFETY: waitpid writes one int through a valid pointer.
    let got = unsafe { libc::waitpid(tid, status, libc::__WALL) };
    assert_eq!(got, tid, "waitpid: {}", std::io::Error::last_os_error());
}

fn trace(request: libc::c_uint, tid: i32, data: i32) {
    // SAFETY: these requests take no pointers: `data` is an integer (options
    // or a signal number) passed in the pointer-sized slot.
    let done = unsafe { libc::ptrace(request, tid, 0usize, data as usize) };
    assert_eq!(done, 0, "ptrace: {}", std::io::Error::last_os_error());
}

/// Runs the attacker as `nobody` while the binder is stopped; returns how
/// many staging directories it renamed.
fn rename_staging_as_nobody(dir: &Path, secret: &Path) -> usize {
    let output = self_command("hostile_renamer", "rename")
        .env(PATH_VAR, dir)
        .env(SECRET_VAR, secret)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let report = results(&output).remove(0);
    report.trim_start_matches("renamed=").parse().unwrap()
}

/// The attacker: every staging directory in the directory it owns is moved
/// away and replaced by one of its own, holding symlinks to the root-owned
/// file under every name bind might use inside it.
#[test]
fn hostile_renamer() {
    if role().as_deref() != Some("rename") {
        return;
    }
    let dir = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
    let secret = PathBuf::from(std::env::var_os(SECRET_VAR).unwrap());
    let mut renamed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let is_dir = entry.file_type().unwrap().is_dir();
        if !is_dir || !name.to_string_lossy().starts_with(".fdpass") {
            continue;
        }
        std::fs::rename(entry.path(), dir.join(format!("moved-{renamed}"))).unwrap();
        std::fs::create_dir(entry.path()).unwrap();
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        for inner in INNER_NAMES {
            std::os::unix::fs::symlink(&secret, entry.path().join(inner)).unwrap();
        }
        renamed += 1;
    }
    println!("RESULT renamed={renamed}");
}

/// The binder: stops itself so that the tracer starts counting at `bind`,
/// binds with mode 0666, stops again to mark the end of `bind`, then checks
/// that the path serves its own listener.
#[test]
fn traced_binder() {
    if role().as_deref() != Some("traced-binder") {
        return;
    }
    let path = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
    // SAFETY: PTRACE_TRACEME and gettid take no pointers; raise only sends
    // a signal. The thread id is printed once this thread is traceable, so
    // the tracer's waitpid on it cannot come too early.
    unsafe {
        assert_eq!(libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize), 0);
        println!("TID {}", libc::gettid());
        libc::raise(libc::SIGSTOP);
    }
    let bound = Listener::bind_with_mode(&path, 0o666);
    // SAFETY: as above.
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
    match bound {
        Err(e) => println!("RESULT bound=err kind={:?} ({e})", e.kind()),
        Ok(listener) => {
            let is_socket = std::fs::symlink_metadata(&path)
                .map(|m| m.file_type().is_socket_file())
                .unwrap_or(false);
            let reachable = is_socket && connect(&path).is_ok() && listener.accept().is_ok();
            println!(
                "RESULT bound=ok reachable={}",
                if reachable { "yes" } else { "no" }
            );
        }
    }
}

trait IsSocket {
    fn is_socket_file(&self) -> bool;
}

impl IsSocket for std::fs::FileType {
    fn is_socket_file(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}
