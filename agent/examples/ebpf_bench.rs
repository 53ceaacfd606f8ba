//! eBPF collector cost benchmark, run by `cargo xtask bench ebpf` (as root).
//!
//! 1. Loads every collector, then drives a context-switch storm (two threads ping-ponging one
//!    byte over a pair of pipes) and reports, from the kernel's bpf_stats, the average cost of
//!    each program per event.
//! 2. Leaves the agent idle with its read loops running and reports its own CPU use (user +
//!    system time of this process) and the programs' kernel time, both as % of one core.

use std::{
    io::{Read as _, Write as _},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use crowsnest::{
    collectors::{CollectorState, CollectorStatus, Collectors},
    config::collectors::CollectorsConfig,
    model::{Sample, SampleSink},
};
use prometheus_client::registry::Registry;

#[derive(Default)]
struct CountingSink(AtomicU64);

impl SampleSink for CountingSink {
    fn append(&self, samples: Vec<Sample>) {
        self.0.fetch_add(samples.len() as u64, Ordering::Relaxed);
    }
}

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .context(name.to_owned()),
    }
}

fn main() -> Result<()> {
    let storm_secs = arg("--storm-secs", 5)?;
    let idle_secs = arg("--idle-secs", 30)?;
    let cfg = CollectorsConfig::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let sink = Arc::new(CountingSink::default());
    let mut registry = Registry::default();
    let collectors = Collectors::start(&cfg, sink.clone(), &mut registry);
    for status in collectors.status() {
        if status.state == CollectorState::Failed {
            bail!(
                "collector {} failed: {}",
                status.name,
                status.reason.unwrap_or_default()
            );
        }
    }

    let before = collectors.status();
    let started = Instant::now();
    let round_trips = storm(Duration::from_secs(storm_secs))?;
    let wall = started.elapsed().as_secs_f64();
    let after = collectors.status();
    println!(
        "context-switch storm: {round_trips} pipe round trips in {wall:.1}s ({:.0}/s)",
        round_trips as f64 / wall
    );
    println!(
        "{:<10} {:<22} {:>12} {:>10}",
        "collector", "program", "events", "ns/event"
    );
    for (b, a) in before.iter().zip(&after) {
        for (pb, pa) in b.programs.iter().zip(&a.programs) {
            let runs = pa.run_count.saturating_sub(pb.run_count);
            let ns = (pa.run_time_seconds - pb.run_time_seconds) * 1e9;
            let per = if runs == 0 { 0.0 } else { ns / runs as f64 };
            println!("{:<10} {:<22} {runs:>12} {per:>10.1}", a.name, pa.name);
        }
    }

    // Idle: the read tasks run on this runtime every interval.
    let cpu_before = process_cpu_seconds()?;
    let kernel_before = kernel_seconds(&collectors.status());
    let started = Instant::now();
    runtime.block_on(tokio::time::sleep(Duration::from_secs(idle_secs)));
    let wall = started.elapsed().as_secs_f64();
    let agent = (process_cpu_seconds()? - cpu_before) / wall * 100.0;
    let kernel = (kernel_seconds(&collectors.status()) - kernel_before) / wall * 100.0;
    println!(
        "idle {wall:.0}s, reads every {:?}: agent {agent:.3}% of one core, eBPF programs \
         {kernel:.3}% of one core, {} samples emitted",
        cfg.interval,
        sink.0.load(Ordering::Relaxed)
    );
    Ok(())
}

fn kernel_seconds(status: &[CollectorStatus]) -> f64 {
    status
        .iter()
        .flat_map(|s| &s.programs)
        .map(|p| p.run_time_seconds)
        .sum()
}

/// Two threads bounce one byte over two pipes until `duration` is up; each bounce is a wakeup
/// and a context switch on each side.
fn storm(duration: Duration) -> Result<u64> {
    let (mut ping_rx, mut ping_tx) = std::io::pipe()?;
    let (mut pong_rx, mut pong_tx) = std::io::pipe()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut byte = [0u8; 1];
        while ping_rx.read(&mut byte)? == 1 {
            pong_tx.write_all(&byte)?;
        }
        Ok(())
    });
    let deadline = Instant::now() + duration;
    let mut trips = 0u64;
    let mut byte = [7u8; 1];
    while Instant::now() < deadline {
        for _ in 0..1000 {
            ping_tx.write_all(&byte)?;
            pong_rx.read_exact(&mut byte)?;
        }
        trips += 1000;
    }
    drop(ping_tx);
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(trips)
}

/// CPU time of this process's live threads, in seconds, with nanosecond resolution (the first
/// field of each `/proc/self/task/<tid>/schedstat`; `/proc/self/stat` only counts 10 ms ticks).
fn process_cpu_seconds() -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += stat
            .split_whitespace()
            .next()
            .context("schedstat")?
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e9)
}
