//! `cargo xtask soak`: the long, bounded durability runs that `cargo xtask
//! test` leaves out (they are `#[ignore]`d there): a multi-minute backend
//! outage with repeated SIGKILLs of the agent and a backlog drain, measured
//! (drain time, agent RSS), and the disk queue's throughput.

use std::time::Duration;

use anyhow::Result;

use crate::cmd;

/// What to run.
#[derive(Debug)]
pub struct Options {
    /// Length of the backend outage.
    pub outage: Duration,
    /// Series the scraped target exposes (scraped every second).
    pub series: u64,
    /// Build and run in the release profile (numbers are meaningful only then).
    pub release: bool,
}

/// Runs the soak tests; every wait inside them is bounded by the outage length.
pub fn run(options: &Options) -> Result<()> {
    let secs = options.outage.as_secs().max(1).to_string();
    let mut timings = Vec::new();
    let series = options.series.to_string();
    cmd::phase("disk queue throughput", &mut timings, || {
        let mut cargo = cmd::cargo();
        cargo.args(["test", "-p", "crowsnest", "--lib"]);
        if options.release {
            cargo.arg("--release");
        }
        cargo.args([
            "--",
            "--ignored",
            "--nocapture",
            "remote_write::disk::tests::soak_",
        ]);
        cmd::run(&mut cargo)
    })?;
    cmd::phase("outage with SIGKILLs, then drain", &mut timings, || {
        let mut cargo = cmd::cargo();
        cargo.args(["test", "-p", "crowsnest-tests", "--test", "soak_durable"]);
        if options.release {
            cargo.arg("--release");
        }
        cargo
            .env("CROWSNEST_SOAK_OUTAGE_SECS", &secs)
            .env("CROWSNEST_SOAK_SERIES", &series)
            .args(["--", "--ignored", "--nocapture", "--test-threads=1"]);
        cmd::run(&mut cargo)
    })
}
