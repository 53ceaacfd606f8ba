//! The `crowsnest` command line, run as a user would: exit codes and output
//! of `check config`, `check metrics`, `debug relabel` and `scrape`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, ensure};
use crowsnest_tests::Exporter;
use crowsnest_tests::agent::agent_binary;

fn run(args: &[&str], stdin: &str) -> Result<Output> {
    let mut child = Command::new(agent_binary()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn crowsnest")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_metrics_accepts_valid_and_names_line_and_column() -> Result<()> {
    let ok = run(
        &["check", "metrics"],
        "# TYPE a counter\na_total 1\nb{x=\"y\"} 2\n",
    )?;
    ensure!(ok.status.success(), "{}", stderr(&ok));
    ensure!(stdout(&ok).contains("OK: 2 samples"), "{}", stdout(&ok));

    let bad = run(&["check", "metrics"], "a 1\nb{x=\"y\" 2\n")?;
    ensure!(bad.status.code() == Some(1), "{:?}", bad.status);
    ensure!(
        stdout(&bad).contains("line 2, column 9"),
        "{}",
        stdout(&bad)
    );

    let om = run(&["check", "metrics", "--format", "openmetrics"], "a 1\n")?;
    ensure!(om.status.code() == Some(1), "OpenMetrics requires # EOF");
    Ok(())
}

#[test]
fn check_config_reports_the_field_and_the_fix() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "scrape_configs:\n- job_name: a\n  static_configs: [{targets: [\"h:1\"]}]\n",
    )?;
    let ok = run(&["check", "config", good.to_str().context("path")?], "")?;
    ensure!(ok.status.success(), "{}", stderr(&ok));
    ensure!(stdout(&ok).contains("OK (1 scrape jobs"), "{}", stdout(&ok));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "scrape_configs:\n- job_name: a\n  scrape_interval: 15s\n  scrape_timeout: 20s\n",
    )?;
    let err = run(&["check", "config", bad.to_str().context("path")?], "")?;
    ensure!(!err.status.success());
    let msg = stderr(&err);
    ensure!(
        msg.contains("scrape_configs[0].scrape_timeout") && msg.contains("lower scrape_timeout"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn debug_relabel_prints_the_result_or_dropped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "relabel_configs:\n- {source_labels: [a], regex: '(.*)', target_label: b, replacement: 'x-$1'}\n- {source_labels: [c], regex: drop, action: drop}\n",
    )?;
    let path = rules.to_str().context("path")?;
    let kept = run(
        &[
            "debug",
            "relabel",
            "--config",
            path,
            "--labels",
            "{__name__=\"up\", a=\"1\"}",
        ],
        "",
    )?;
    ensure!(kept.status.success(), "{}", stderr(&kept));
    ensure!(
        stdout(&kept).trim() == r#"{__name__="up", a="1", b="x-1"}"#,
        "{}",
        stdout(&kept)
    );
    let dropped = run(
        &[
            "debug",
            "relabel",
            "--config",
            path,
            "--labels",
            "{c=\"drop\"}",
        ],
        "",
    )?;
    ensure!(stdout(&dropped).trim() == "dropped", "{}", stdout(&dropped));
    Ok(())
}

#[tokio::test]
async fn scrape_prints_the_series_that_would_be_sent() -> Result<()> {
    let exporter = Exporter::start().await?;
    exporter.serve_text("# TYPE req counter\nreq_total{code=\"200\"} 7\nempty{a=\"\"} 1\n");
    let url = exporter.url();
    let out = tokio::task::spawn_blocking(move || run(&["scrape", &url], "")).await??;
    ensure!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let target = exporter.target();
    ensure!(
        text.contains(&format!(
            "req_total{{code=\"200\", instance=\"{target}\", job=\"scrape\"}} 7 "
        )),
        "{text}"
    );
    ensure!(
        text.contains(&format!(
            "empty{{instance=\"{target}\", job=\"scrape\"}} 1 "
        )),
        "{text}"
    );
    Ok(())
}
