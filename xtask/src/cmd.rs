//! Running child commands from the workspace root, loudly.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// A `cargo` command in the workspace root; uses the cargo that runs xtask when known.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// Prints the command, runs it with inherited stdio and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = show(command);
    eprintln!("xtask: $ {shown}");
    let status = command
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Like [`run`], but also hands every output line (stdout and stderr) to `observe` while
/// echoing it unchanged, so xtask can read what a runner reports without hiding it.
pub fn run_observed(command: &mut Command, mut observe: impl FnMut(&str)) -> Result<()> {
    let shown = show(command);
    eprintln!("xtask: $ {shown}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let (sender, lines) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(forward(stdout, sender.clone(), |line| println!("{line}")));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(forward(stderr, sender, |line| eprintln!("{line}")));
    }
    for line in lines {
        observe(&line);
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("wait for `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Echoes each line of `stream` with `echo` and sends it on; ends with the stream.
fn forward(
    stream: impl Read + Send + 'static,
    sender: mpsc::Sender<String>,
    echo: fn(&str),
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            echo(&line);
            if sender.send(line).is_err() {
                break;
            }
        }
    })
}

/// Whether `program` can be found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `12.3s` or `4m05s`.
pub fn format_duration(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Runs `f` as a named phase and prints how long it took, even when it fails.
pub fn phase<T>(
    name: &str,
    timings: &mut Vec<(String, Duration)>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    eprintln!("xtask: ── {name} ──");
    let started = Instant::now();
    let result = f();
    let elapsed = started.elapsed();
    let verdict = if result.is_ok() { "ok" } else { "FAILED" };
    eprintln!("xtask: {name}: {verdict} in {}", format_duration(elapsed));
    timings.push((name.to_owned(), elapsed));
    result
}

fn show(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds_then_minutes() {
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
    }

    #[test]
    fn observed_lines_come_from_both_streams() {
        let mut seen = Vec::new();
        run_observed(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            |line| {
                seen.push(line.to_owned());
            },
        )
        .expect("sh succeeds");
        seen.sort();
        assert_eq!(seen, ["err", "out"]);
    }

    #[test]
    fn a_failing_command_is_an_error_naming_it() {
        let err = run(Command::new("false").arg("--flag")).expect_err("false fails");
        assert!(err.to_string().contains("false --flag"), "{err}");
    }
}
