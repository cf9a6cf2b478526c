//! What one soak process measured in one run, as a line a child prints and
//! its parent parses.

macro_rules! stats {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// One process's figures for one run. Durations are in microseconds.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Stats {
            /// `STATS name=value ...`, one line.
            ///
            /// ```
            /// use fdpass_soak::stats::Stats;
            /// let stats = Stats { sent: 3, received: 4, ..Stats::default() };
            /// assert_eq!(Stats::parse(&stats.to_line()), Some(stats));
            /// ```
            pub fn to_line(&self) -> String {
                let mut line = String::from("STATS");
                $(line.push_str(&format!(" {}={}", stringify!($name), self.$name));)*
                line
            }

            /// Parses a line made by [`to_line`](Self::to_line).
            pub fn parse(line: &str) -> Option<Stats> {
                let rest = line.trim().strip_prefix("STATS")?;
                let mut stats = Stats::default();
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=')?;
                    let value: u64 = value.parse().ok()?;
                    match key {
                        $(stringify!($name) => stats.$name = value,)*
                        _ => return None,
                    }
                }
                Some(stats)
            }
        }
    };
}

stats! {
    /// Pushes sent (taken by the kernel): descriptors, or messages of the
    /// mix.
    sent,
    /// Pushes received and checked.
    received,
    /// Descriptors received and checked (in messages or on their own).
    descriptors_received,
    /// Payload bytes received and checked.
    payload_bytes_received,
    /// Wall time of the run in this process.
    elapsed_us,
    /// Times the receive side went idle behind a retry deadline while
    /// requests were outstanding: the descriptor table was full.
    table_full_waits,
    /// Total time spent in those waits.
    table_full_wait_us,
    /// Times the send side went idle behind a retry deadline while
    /// descriptors were queued (`ETOOMANYREFS`, `ENOBUFS`, `ENOMEM`).
    send_backoffs,
    /// Times the socket buffer was full (send side waiting for writability).
    socket_full,
    /// The deepest the send queue got.
    max_queue,
    /// The longest time between two deliveries.
    longest_stall_us,
    /// Sequence number delivered at the end of that stall.
    longest_stall_seq,
    /// Open descriptors when the run started (before the passer existed).
    baseline_fds,
    /// The most open descriptors seen (sampled every 10 ms).
    peak_fds,
    /// Times `RLIMIT_NOFILE` was lowered.
    limit_lowered,
    /// Times the table was filled.
    table_filled,
    /// Bursts made.
    bursts,
    /// Bursts that filled the socket buffer before queueing more.
    bursts_filled_buffer,
    /// Churn periods.
    churn_periods,
    /// Open-and-close operations of churn threads.
    churn_ops,
    /// Times a new descriptor to send could not be made (full table).
    source_blocked,
    /// Times `poll` returned `EINTR`.
    poll_eintr,
}
