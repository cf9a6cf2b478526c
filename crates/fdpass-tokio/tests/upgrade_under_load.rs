//! The upgrade example under load: clients connect continuously while the
//! server upgrades itself 20 times on SIGHUP, and while successors crash,
//! hang or decline before they are ready. Every connection must be served:
//! refused, reset or cut-short connections are counted, and the target is
//! zero.

#[path = "../examples/upgrade.rs"]
#[allow(dead_code)]
mod example;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "FDPASS_TEST_ROLE";
const TEST: &str = "no_connection_is_refused_across_twenty_upgrades_and_failed_successors";
const UPGRADES: usize = 20;
/// The bound on any one wait; reaching it is a failure.
const BOUND: Duration = Duration::from_secs(30);

/// Held around every spawn of this file's tests: one of them makes a
/// descriptor inheritable for its child, which no other child may inherit.
static SPAWN: Mutex<()> = Mutex::new(());

/// What the clients saw.
#[derive(Default)]
struct Tally {
    served: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
    pids: Mutex<std::collections::BTreeSet<u32>>,
}

fn one_request(address: SocketAddr, tally: &Tally) {
    let result = (|| -> std::io::Result<u32> {
        let mut stream = TcpStream::connect_timeout(&address, BOUND)?;
        stream.set_read_timeout(Some(BOUND))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let pid = response
            .strip_prefix("HTTP/1.0 200 OK\r\n")
            .and_then(|rest| rest.rsplit("served by pid ").next())
            .and_then(|pid| pid.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response {response:?}")))?;
        Ok(pid)
    })();
    match result {
        Ok(pid) => {
            tally.served.fetch_add(1, Ordering::Relaxed);
            tally.pids.lock().expect("lock").insert(pid);
        }
        Err(e) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.failures.lock().expect("lock").push(e.to_string());
        }
    }
}

/// The server's output lines, from every generation (they share stdout).
struct Lines(Receiver<String>);

impl Lines {
    fn wait_for(&self, what: impl Fn(&str) -> bool, why: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .0
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if what(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no line {why} within {BOUND:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the server exited before {why}"),
            }
        }
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid above 0");
    rustix::process::kill_process(pid, signal).expect("signal the server");
}

/// Kills whatever generation runs, should the test fail half-way.
struct StopServer(PathBuf, Option<Child>);

impl Drop for StopServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(pid) = std::fs::read_to_string(&self.0) {
                if let Ok(pid) = pid.trim().parse::<u32>() {
                    signal(pid, rustix::process::Signal::KILL);
                }
            }
            if let Some(child) = &mut self.1 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[test]
fn no_connection_is_refused_across_twenty_upgrades_and_failed_successors() {
    if std::env::var_os(ROLE_VAR).is_some() {
        let options = example::Options::from_env_and_args(&[]);
        example::run(options).expect("the server generation runs");
        return;
    }
    let dir = std::env::temp_dir().join(format!("fdpass-upgrade-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pid_file = dir.join("server.pid");
    let fault_file = dir.join("fault");
    let spawning = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "server")
        .env("UPGRADE_EXAMPLE_ADDR", "127.0.0.1:0")
        .env("UPGRADE_EXAMPLE_PID_FILE", &pid_file)
        .env("UPGRADE_EXAMPLE_FAULT_FILE", &fault_file)
        .env("UPGRADE_EXAMPLE_READY_TIMEOUT_MS", "2000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    drop(spawning);
    let stdout = child.stdout.take().expect("piped");
    let mut stop = StopServer(pid_file.clone(), Some(child));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
            // The harness prints a test's name without a line break before
            // running it, so a generation's first line may start mid-line.
            let line = match line.find("ready pid=").or_else(|| line.find("pid=")) {
                Some(start) => line[start..].to_owned(),
                None => line,
            };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let lines = Lines(receiver);
    let first = lines.wait_for(|l| l.starts_with("ready pid="), "for the first generation");
    let address: SocketAddr = first
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("the address in the ready line");

    // Clients: four threads, each one request after another, all along.
    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (tally, running) = (Arc::clone(&tally), Arc::clone(&running));
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    one_request(address, &tally);
                }
            })
        })
        .collect();
    let served_by_now = |at_least: u64| {
        // Let the clients get some requests through each generation.
        let deadline = Instant::now() + BOUND;
        while tally.served.load(Ordering::Relaxed) < at_least {
            assert!(Instant::now() < deadline, "clients are not being served");
            std::thread::yield_now();
        }
    };

    let mut upgrades = 0;
    let mut pid = read_pid(&pid_file);
    let upgrade = |pid: u32| -> u32 {
        signal(pid, rustix::process::Signal::HUP);
        lines.wait_for(
            |l| l.starts_with(&format!("pid={pid} handed over to pid=")),
            "announcing the hand-over",
        );
        let successor = read_pid(&pid_file);
        assert_ne!(
            successor, pid,
            "the pid file names the successor once it is ready"
        );
        successor
    };
    for round in 0..UPGRADES {
        served_by_now(tally.served.load(Ordering::Relaxed) + 20);
        pid = upgrade(pid);
        upgrades += 1;
        // Failed successors, between the upgrades: each leaves the old
        // generation serving, the pid file unchanged.
        let fault = match round {
            5 => Some("crash"),
            10 => Some("hang"),
            15 => Some("decline"),
            _ => None,
        };
        if let Some(fault) = fault {
            served_by_now(tally.served.load(Ordering::Relaxed) + 20);
            std::fs::write(&fault_file, fault).expect("fault file");
            signal(pid, rustix::process::Signal::HUP);
            let line = lines.wait_for(
                |l| l.starts_with(&format!("pid={pid} upgrade failed")),
                "reporting the failed upgrade",
            );
            eprintln!("{fault}: {line}");
            assert!(!fault_file.exists(), "the successor took the fault");
            assert_eq!(read_pid(&pid_file), pid, "the old generation still serves");
            served_by_now(tally.served.load(Ordering::Relaxed) + 20);
        }
    }
    served_by_now(tally.served.load(Ordering::Relaxed) + 20);
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    signal(pid, rustix::process::Signal::TERM);
    lines.wait_for(
        |l| l.starts_with(&format!("pid={pid} exiting")),
        "the last generation exiting",
    );
    let status = stop
        .1
        .take()
        .expect("first generation")
        .wait()
        .expect("wait");
    assert!(
        status.success(),
        "the first generation exited cleanly: {status}"
    );

    let served = tally.served.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let pids = tally.pids.lock().expect("lock").len();
    eprintln!("RESULT upgrades={upgrades} served={served} failed={failed} generations_seen={pids}");
    assert_eq!(
        failed,
        0,
        "refused, reset or cut-short connections: {:?}",
        tally
            .failures
            .lock()
            .expect("lock")
            .iter()
            .take(10)
            .collect::<Vec<_>>()
    );
    assert_eq!(pids, UPGRADES + 1, "every generation served requests");
    let _ = std::fs::remove_dir_all(&dir);
}

/// systemd's activation contract, simulated: the first generation finds its
/// listener at descriptor 3 with `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` set as `sd_listen_fds(3)` describes (its configured
/// address is unusable, so a fresh bind would fail), serves on it, and hands
/// it on to a successor on SIGHUP with no connection refused.
#[cfg(feature = "systemd")]
#[test]
fn a_socket_activated_server_serves_and_hands_its_listener_on() {
    const ACTIVATED: &str = "a_socket_activated_server_serves_and_hands_its_listener_on";
    if std::env::var_os(ROLE_VAR).is_some() {
        let options = example::Options::from_env_and_args(&[]);
        example::run(options).expect("the server generation runs");
        return;
    }
    use std::os::fd::{AsRawFd, OwnedFd};
    let dir = std::env::temp_dir().join(format!("fdpass-upgrade-activated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pid_file = dir.join("server.pid");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    // Inheritable, at a single-digit number the shell moves to 3.
    let spawning = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    let high: OwnedFd = rustix::io::fcntl_dupfd_cloexec(&listener, 5).expect("dup");
    assert!(
        high.as_raw_fd() <= 9,
        "few descriptors open in the test process"
    );
    rustix::io::fcntl_setfd(&high, rustix::io::FdFlags::empty()).expect("inheritable");
    let script = format!(
        "exec 3<&{n} {n}<&-; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec \"$0\" \"$@\"",
        n = high.as_raw_fd()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", ACTIVATED, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "server")
        .env("UPGRADE_EXAMPLE_ADDR", "unusable address")
        .env("UPGRADE_EXAMPLE_PID_FILE", &pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the activated server");
    drop(high);
    drop(spawning);
    drop(listener);
    let stdout = child.stdout.take().expect("piped");
    let mut stop = StopServer(pid_file.clone(), Some(child));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = match line.find("ready pid=").or_else(|| line.find("pid=")) {
                Some(start) => line[start..].to_owned(),
                None => line,
            };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let lines = Lines(receiver);
    let first = lines.wait_for(
        |l| l.starts_with("ready pid="),
        "for the activated generation",
    );
    assert!(
        first.ends_with(&address.to_string()),
        "serves the activated socket: {first}"
    );
    let tally = Tally::default();
    one_request(address, &tally);
    let pid = read_pid(&pid_file);
    signal(pid, rustix::process::Signal::HUP);
    lines.wait_for(
        |l| l.starts_with(&format!("pid={pid} handed over to pid=")),
        "the hand-over",
    );
    let successor = read_pid(&pid_file);
    one_request(address, &tally);
    signal(successor, rustix::process::Signal::TERM);
    lines.wait_for(
        |l| l.starts_with(&format!("pid={successor} exiting")),
        "the successor exiting",
    );
    assert!(stop
        .1
        .take()
        .expect("first")
        .wait()
        .expect("wait")
        .success());
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "{:?}",
        tally.failures.lock().expect("lock")
    );
    assert_eq!(
        *tally.pids.lock().expect("lock"),
        [pid, successor].into_iter().collect(),
        "the activated process, then its successor, served"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
