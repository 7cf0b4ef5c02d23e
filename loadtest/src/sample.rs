//! What the runner records about earshot every few seconds of a long run: its resident
//! memory and open file descriptors (from `/proc/<pid>`), the outbox file's size on disk,
//! and, from the same moment's `/metrics` and the firehose's progress line, deliveries, the
//! two backlogs and how much the firehose generated and sent.
//!
//! A leak shows as one of these climbing while the load stays the same, so the soak report
//! draws them over time; the overload report reads their maxima.

use std::path::Path;

use serde::Serialize;

/// One sample. `None` where the value could not be read (no `/proc` on this system, the
/// outbox file not created yet): the report says so instead of drawing a zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the runner started earshot.
    pub t: f64,
    /// `VmRSS` of the earshot process, bytes.
    pub rss_bytes: Option<u64>,
    /// Entries in `/proc/<pid>/fd`.
    pub open_fds: Option<u64>,
    /// Size of the outbox file, bytes.
    pub outbox_bytes: Option<u64>,
    /// Webhook deliveries that succeeded (earshot's `/metrics`).
    pub delivered: u64,
    /// Entries waiting in the outbox (`earshot_queue_depth`).
    pub queue_depth: u64,
    /// Batches waiting in the frame channel (`earshot_channel_frame_batches`).
    pub channel_batches: u64,
    /// Events the firehose had generated (its last progress line).
    pub generated: u64,
    /// Frames the firehose had written to earshot's connection.
    pub sent: u64,
    /// Milliseconds the firehose had waited for earshot to catch up (`--max-lag`).
    pub blocked_ms: u64,
}

/// `VmRSS` from the text of `/proc/<pid>/status`, in bytes (the file says kB).
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => kb.checked_mul(1024),
        Some(_) => None,
    }
}

/// A progress line of the firehose: `progress GENERATED SENT BLOCKED_MS`.
pub fn parse_progress(line: &str) -> Option<(u64, u64, u64)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["progress", g, s, b] => Some((g.parse().ok()?, s.parse().ok()?, b.parse().ok()?)),
        _ => None,
    }
}

/// Resident memory of process `pid`, bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Open file descriptors of process `pid`.
pub fn open_fds_of(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) from the text of `/proc/<pid>/stat`. The command name, field
/// 2, is in parentheses and may hold spaces, so fields are counted after its closing one:
/// `utime` and `stime` are fields 14 and 15.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let w: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = w.get(11)?.parse().ok()?;
    let stime: u64 = w.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds process `pid` has used so far (all its threads, user and system): what a
/// process cost, which on a shared machine varies less than how fast it went.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    parse_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The size of a file, bytes.
pub fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes_and_refuses_what_it_cannot_read() {
        let status = "Name:\tearshot\nVmPeak:\t  999 kB\nVmRSS:\t   51236 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(51_236 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn reads_progress_lines() {
        assert_eq!(parse_progress("progress 10 8 250"), Some((10, 8, 250)));
        assert_eq!(parse_progress("progress 10 8"), None);
        assert_eq!(parse_progress("step-end 0 10 1.0"), None);
        assert_eq!(parse_progress("progress x 8 0"), None);
    }

    #[test]
    fn reads_cpu_seconds_past_a_command_name_with_spaces() {
        let stat =
            "4242 (tokio rt) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.25));
        assert_eq!(parse_cpu_seconds("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_seconds("no parenthesis"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_of(pid).unwrap() > 0);
        assert!(cpu_seconds_of(pid).unwrap() >= 0.0);
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(open_fds_of(pid).unwrap() >= 1);
        std::fs::write(file.path(), b"12345").unwrap();
        assert_eq!(file_size(file.path()), Some(5));
        assert_eq!(file_size(Path::new("/nonexistent/outbox.redb")), None);
    }
}
