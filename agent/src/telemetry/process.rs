//! `process_*` metrics of the agent itself, read from `/proc/self` on each
//! scrape, with the names every Prometheus client library uses.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reports CPU time, resident and virtual memory, open fds and start time.
#[derive(Debug)]
pub struct ProcessCollector {
    clock_ticks: f64,
    page_size: f64,
    boot_time: Option<f64>,
}

impl ProcessCollector {
    /// A collector for the current process.
    pub fn new() -> Self {
        Self {
            // The kernel's USER_HZ is 100 on every architecture Linux supports
            // for this agent, and the page size 4 KiB; reading them needs libc.
            clock_ticks: 100.0,
            page_size: 4096.0,
            boot_time: read_boot_time(),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields of `/proc/self/stat` after the command name.
struct Stat {
    utime: f64,
    stime: f64,
    start_ticks: f64,
    vsize: f64,
    rss_pages: f64,
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
    // Indices are field numbers from proc(5) minus 3.
    Some(Stat {
        utime: num(11)?,
        stime: num(12)?,
        start_ticks: num(19)?,
        vsize: num(20)?,
        rss_pages: num(21)?,
    })
}

fn read_boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_fds() -> Option<i64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX))
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stat) = read_stat() else {
            return Ok(());
        };
        let cpu = ConstCounter::new((stat.utime + stat.stime) / self.clock_ticks);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.rss_pages * self.page_size,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.vsize,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        if let Some(boot) = self.boot_time {
            let g = ConstGauge::new(boot + stat.start_ticks / self.clock_ticks);
            g.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(fds) = open_fds() {
            let g = ConstGauge::new(fds);
            g.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
