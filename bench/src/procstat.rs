//! CPU time and resident memory of the measured servers, read from Linux's /proc.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Clock ticks per second of /proc/PID/stat times: USER_HZ, 100 on every Linux ABI the bench runs on.
const TICKS_PER_SECOND: f64 = 100.0;

struct Stat {
    ppid: u32,
    /// utime + stime of the process itself.
    own_ticks: u64,
    /// cutime + cstime: children it already reaped (Postgres backends that exited).
    reaped_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are counted after the last ')'.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat { ppid: field(4)? as u32, own_ticks: field(14)? + field(15)?, reaped_ticks: field(16)? + field(17)? })
}

/// A server as one or more root processes and all their descendants (nginx workers, Postgres backends).
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub roots: Vec<u32>,
}

impl Server {
    pub fn new(name: &str, roots: &[u32]) -> Self {
        Self { name: name.to_owned(), roots: roots.to_vec() }
    }

    /// CPU seconds used so far by the roots, their live descendants and the children they reaped.
    pub fn cpu_seconds(&self) -> f64 {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut stats = HashMap::new();
        if let Ok(entries) = fs::read_dir("/proc") {
            for pid in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
                if let Some(s) = stat(pid) {
                    children.entry(s.ppid).or_default().push(pid);
                    stats.insert(pid, s);
                }
            }
        }
        let mut ticks = 0;
        let mut pending: Vec<u32> = self.roots.clone();
        for root in &self.roots {
            ticks += stats.get(root).map_or(0, |s| s.reaped_ticks);
        }
        while let Some(pid) = pending.pop() {
            ticks += stats.get(&pid).map_or(0, |s| s.own_ticks);
            pending.extend(children.get(&pid).into_iter().flatten());
        }
        ticks as f64 / TICKS_PER_SECOND
    }
}

/// Resident set of one process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's RSS every few milliseconds until stopped; keeps the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        Self { stop, peak, task }
    }

    /// Peak RSS seen, KiB.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = Server::new("self", &[std::process::id()]);
        let before = me.cpu_seconds();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i * i));
        }
        assert!(x > 0);
        assert!(me.cpu_seconds() > before, "busy work must show as CPU time");
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
