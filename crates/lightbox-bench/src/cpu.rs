//! CPU accounting for a scenario, read from `/proc` (Linux): the CPU time the
//! server and the local PostgreSQL spent per request, and the share of the
//! machine's CPU time the hypervisor gave to other guests (steal). On a shared
//! VM, latency moves with the neighbours (session 5 saw 16–37 % steal under
//! load); CPU time per request moves much less, so it is the number to compare
//! between runs on different days.

use serde_json::{json, Value};

/// Which processes a scenario's CPU time is counted for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meter {
    /// The server under test (all its threads).
    pub server_pid: Option<u32>,
    /// Whether to count every `postgres` process on this machine (the backends
    /// serving the server, and the cluster's background workers).
    pub postgres: bool,
}

/// Clock ticks consumed so far, per party, and the machine's time by state.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    server: u64,
    postgres: u64,
    /// Every CPU's time: (all states, steal).
    machine: (u64, u64),
}

/// What a scenario used, per request (milliseconds) and as a share (percent).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub server_ms_per_request: Option<f64>,
    pub postgres_ms_per_request: Option<f64>,
    pub steal_percent: f64,
}

impl Meter {
    pub fn none() -> Meter {
        Meter::default()
    }

    pub fn sample(&self) -> Option<Sample> {
        let machine = machine_ticks()?;
        let server = self.server_pid.and_then(process_ticks).unwrap_or(0);
        let postgres = if self.postgres { postgres_ticks() } else { 0 };
        Some(Sample {
            server,
            postgres,
            machine,
        })
    }

    /// The use since `before` (taken with [`Meter::sample`]), over `requests`
    /// requests; `None` where `/proc` could not be read.
    pub fn since(&self, before: Option<Sample>, requests: u64) -> Option<Usage> {
        Some(self.usage(before?, self.sample()?, requests))
    }

    /// The use between `before` and `after`, over `requests` requests.
    pub fn usage(&self, before: Sample, after: Sample, requests: u64) -> Usage {
        let per_request = |ticks: u64| {
            let seconds = ticks as f64 / ticks_per_second();
            seconds * 1000.0 / requests.max(1) as f64
        };
        let total = after.machine.0.saturating_sub(before.machine.0);
        let steal = after.machine.1.saturating_sub(before.machine.1);
        Usage {
            server_ms_per_request: self
                .server_pid
                .map(|_| per_request(after.server.saturating_sub(before.server))),
            postgres_ms_per_request: self
                .postgres
                .then(|| per_request(after.postgres.saturating_sub(before.postgres))),
            steal_percent: if total == 0 {
                0.0
            } else {
                steal as f64 * 100.0 / total as f64
            },
        }
    }
}

impl Usage {
    pub fn json(&self) -> Value {
        json!({
            "server_cpu_ms_per_request": self.server_ms_per_request,
            "postgres_cpu_ms_per_request": self.postgres_ms_per_request,
            "steal_percent": self.steal_percent,
        })
    }

    /// Table cells: server CPU, database CPU (ms per request), steal (%).
    pub fn cells(usage: Option<&Usage>) -> String {
        let ms = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.2}"));
        match usage {
            Some(u) => format!(
                "{} | {} | {:.0}",
                ms(u.server_ms_per_request),
                ms(u.postgres_ms_per_request),
                u.steal_percent
            ),
            None => "— | — | —".to_owned(),
        }
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `/proc/stat`'s first line: (every state added up, steal).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_line(stat.lines().next()?)
}

fn parse_machine_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    (values.len() == 8).then(|| (values.iter().sum(), values[7]))
}

/// CPU time of a process (all its threads) and of its children that have
/// exited (PostgreSQL's postmaster collects its backends' time when they end),
/// in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&stat).map(|(_, ticks)| ticks)
}

/// (command name, utime + stime + cutime + cstime) from a `/proc/PID/stat`
/// line. The name is in parentheses and may itself contain spaces or parentheses.
fn parse_process_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = &stat[open + 1..close];
    // After the name: state is field 3; utime, stime, cutime and cstime are
    // fields 14 to 17.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let mut ticks = 0;
    for field in 11..15 {
        ticks += rest.get(field)?.parse::<u64>().ok()?;
    }
    Some((name, ticks))
}

fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, ticks) = parse_process_stat(&stat)?;
            (name == "postgres").then_some(ticks)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_the_machine_line_with_steal() {
        let line = "cpu  100 5 50 800 10 1 2 32 0 0";
        assert_eq!(parse_machine_line(line), Some((1000, 32)));
        assert_eq!(parse_machine_line("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(parse_machine_line("cpu 1 2 3"), None);
    }

    #[test]
    fn reads_a_process_line_whose_name_has_spaces_and_parentheses() {
        let stat = "4242 (postgres: a (b)) S 1 4242 4242 0 -1 4194560 500 0 0 0 70 30 5 1 20 0 1 0 100 0 0";
        assert_eq!(parse_process_stat(stat), Some(("postgres: a (b)", 106)));
    }

    #[test]
    fn this_process_burns_measurable_cpu() {
        let pid = std::process::id();
        let meter = Meter {
            server_pid: Some(pid),
            postgres: false,
        };
        let before = meter.sample().expect("/proc is readable");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = meter.sample().expect("/proc is readable");
        let usage = meter.usage(before, after, 1);
        let spent = usage.server_ms_per_request.expect("server metered");
        // Busy for 300 ms: at least a third of it shows even on a loaded machine.
        assert!(spent >= 100.0, "{spent} ms");
        assert!((0.0..=100.0).contains(&usage.steal_percent));
    }
}
