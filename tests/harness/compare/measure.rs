//! What a process cost, from /proc: CPU time (utime + stime) and peak resident set (VmHWM).

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// User plus system CPU time `pid` has used so far (all its threads).
///
/// # Errors
/// When `/proc/<pid>/stat` cannot be read or parsed (e.g. the process is gone).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("parse {path}"))?;
    let per_second = rustix::param::clock_ticks_per_second();
    if per_second == 0 {
        bail!("clock ticks per second is 0");
    }
    Ok(Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second))
}

/// Peak resident set size of `pid` in bytes (`VmHWM`).
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or has no `VmHWM` line.
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status_kib(&status, "VmHWM:")
        .map(|kib| kib * 1024)
        .with_context(|| format!("no VmHWM in {path}"))
}

/// utime + stime in clock ticks. Fields are counted after the command name's closing
/// parenthesis, since the name itself may contain spaces and parentheses.
fn parse_stat_ticks(stat: &str) -> Result<u64> {
    let after_name = stat.rfind(')').context("no command name")?;
    let fields: Vec<&str> = stat[after_name + 1..].split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let field = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .context("too few fields")?
            .parse::<u64>()
            .with_context(|| format!("field {}", index + 3))
    };
    Ok(field(11)? + field(12)?)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 123 456 789";
        assert_eq!(parse_stat_ticks(stat).expect("parses"), 325);
        assert!(parse_stat_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn status_lines_give_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(5120));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_time(pid).expect("cpu") > Duration::ZERO);
        assert!(peak_rss_bytes(pid).expect("rss") > 1024 * 1024);
        assert!(cpu_time(u32::MAX).is_err());
    }
}
