//! The process's descriptor table: how many are open, and how much room is
//! left (`RLIMIT_NOFILE`).

use std::sync::{Once, OnceLock};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors open in this process, counted in `/proc/self/fd` (the
/// directory's own descriptor is open while counting, before and after alike).
pub fn open_count() -> usize {
    settle();
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Waits until every close the passer started has happened: descriptors a
/// peer chose are closed by `fdpass_core::disposal`'s threads, so the count
/// after a case would otherwise depend on timing.
fn settle() {
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "disposals still pending after 30 s"
    );
}

/// The limit this process started with, kept so it can always be restored.
static ORIGINAL: OnceLock<Rlimit> = OnceLock::new();

fn original() -> Rlimit {
    *ORIGINAL.get_or_init(|| {
        // A failure must not leave the table limited: the fuzzer writes the
        // crashing input to a new file.
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_room();
                previous(info);
            }));
        });
        getrlimit(Resource::Nofile)
    })
}

/// Lowers the soft `RLIMIT_NOFILE` so that exactly `room` more descriptors
/// can be opened (the kernel hands out the lowest free numbers below it).
pub fn limit_room(room: usize) {
    let original = original();
    // Listing the table takes a descriptor too.
    restore_room();
    // Every open number except the listing's own directory descriptor,
    // which is closed again once the listing is done.
    let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let listing = target.starts_with("/proc") && target.ends_with("fd");
            (!listing).then(|| entry.file_name().to_str()?.parse().ok())?
        })
        .collect();
    // The largest limit with `room` free numbers below it. (With none free
    // the limit is the lowest free number, not 0: with a limit of 0 the
    // kernel refuses even `F_DUPFD` with `EINVAL` instead of `EMFILE`.)
    let (mut limit, mut free) = (0u64, 0);
    while free < room || open.contains(&limit) {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    let limit = original.current.map_or(limit, |current| limit.min(current));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: original.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");
}

/// Puts back the limit the process started with.
pub fn restore_room() {
    if let Some(original) = ORIGINAL.get() {
        let _ = setrlimit(Resource::Nofile, *original);
    }
}
