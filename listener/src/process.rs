//! The process metrics every binary adds to its `/metrics` (the names Prometheus's own client
//! libraries use, so standard dashboards and the kaas control-loop dashboard read them):
//! resident memory, CPU time, open file descriptors and start time, read from `/proc/self`.
//! prometheus-client has no such collector, and a registry's `kaas` prefix would rename them,
//! so they are written as text into the OpenMetrics exposition, before its `# EOF`.

use std::fmt::Write;

/// What `/proc/self` says (Linux); `None` for a value that could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    /// Resident set size in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// User and system CPU time in seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on every Linux architecture
/// Kubernetes runs on).
const TICKS: f64 = 100.0;
/// Page size of `/proc/self/statm` (4 KiB on x86-64 and arm64 with their default kernels).
const PAGE: u64 = 4096;

impl Process {
    /// Reads this process's values.
    pub fn read() -> Process {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
        // utime and stime are fields 14 and 15 of stat, starttime 22 (1-based, with pid and
        // comm as 1 and 2): here 11, 12 and 19.
        let cpu_seconds = match (field(11), field(12)) {
            (Some(u), Some(s)) => Some((u + s) / TICKS),
            _ => None,
        };
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let start_time_seconds = match (boot, field(19)) {
            (Some(boot), Some(ticks)) => Some(boot + ticks / TICKS),
            _ => None,
        };
        let resident_memory_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * PAGE);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        Process {
            resident_memory_bytes,
            cpu_seconds,
            open_fds,
            start_time_seconds,
        }
    }

    /// The families in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: Option<String>| {
            if let Some(value) = value {
                let sample = if kind == "counter" {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                let _ = write!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {value}\n"
                );
            }
        };
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_memory_bytes.map(|v| v.to_string()),
        );
        family(
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.map(|v| v.to_string()),
        );
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.map(|v| v.to_string()),
        );
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            self.start_time_seconds.map(|v| v.to_string()),
        );
        out
    }
}

/// `openmetrics` (a registry's encoding, ending in `# EOF`) with this process's families added.
pub fn with_process_metrics(mut openmetrics: String) -> String {
    let process = Process::read().encode();
    match openmetrics.rfind("# EOF") {
        Some(at) => openmetrics.insert_str(at, &process),
        None => openmetrics.push_str(&process),
    }
    openmetrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_a_running_one() {
        let p = Process::read();
        let rss = p.resident_memory_bytes.expect("rss");
        assert!(rss > 1 << 20, "{rss}");
        assert!(p.open_fds.expect("fds") >= 3);
        let started = p.start_time_seconds.expect("start");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} {now}"
        );
        assert!(p.cpu_seconds.expect("cpu") >= 0.0);
    }

    #[test]
    fn the_families_go_before_the_end_marker_and_read_back_classic() {
        let text = with_process_metrics("# HELP a x\n# TYPE a gauge\na 1\n# EOF\n".into());
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        let classic = crate::exposition::classic(&text);
        assert!(
            classic.contains("# TYPE process_cpu_seconds_total counter"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE process_resident_memory_bytes gauge"),
            "{classic}"
        );
    }
}
