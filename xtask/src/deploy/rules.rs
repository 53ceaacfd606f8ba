//! The alert rules of `deploy/rules`: promtool checks and runs them; every alert must have a
//! firing and a quiet unit test and a runbook section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_yaml::Value;

use super::chart::{at, str_at};
use crate::cmd;

const PROMTOOL: &str = "promtool";

fn rules_dir() -> PathBuf {
    cmd::workspace_root().join("deploy").join("rules")
}

/// The `*.yaml` files of a directory, sorted.
fn yaml_files(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn load(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// The rule groups of every rules file, in file order.
pub fn groups() -> Result<Vec<Value>> {
    let mut groups = Vec::new();
    for file in yaml_files(&rules_dir())? {
        groups.extend(
            at(&load(&file)?, &["groups"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    Ok(groups)
}

/// Alert name -> runbook anchor, of every rules file.
fn alerts() -> Result<BTreeMap<String, String>> {
    let mut alerts = BTreeMap::new();
    for file in yaml_files(&rules_dir())? {
        let doc = load(&file)?;
        for group in at(&doc, &["groups"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for rule in at(group, &["rules"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let name = str_at(rule, &["alert"]);
                if name.is_empty() {
                    continue;
                }
                let url = str_at(rule, &["annotations", "runbook_url"]);
                let anchor = url.rsplit_once('#').map_or("", |(_, a)| a).to_owned();
                ensure!(
                    !str_at(rule, &["annotations", "summary"]).is_empty()
                        && !str_at(rule, &["annotations", "description"]).is_empty(),
                    "alert {name} lacks a summary or description"
                );
                ensure!(
                    alerts.insert(name.to_owned(), anchor).is_none(),
                    "alert {name} is defined twice"
                );
            }
        }
    }
    Ok(alerts)
}

/// Runs promtool and the coverage checks.
pub fn check() -> Result<()> {
    let dir = rules_dir();
    let rule_files = yaml_files(&dir)?;
    let test_files = yaml_files(&dir.join("tests"))?;
    cmd::run(
        Command::new(PROMTOOL)
            .args(["check", "rules"])
            .args(&rule_files),
    )?;
    cmd::run(
        Command::new(PROMTOOL)
            .args(["test", "rules"])
            .args(&test_files),
    )?;
    let alerts = alerts()?;
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for file in &test_files {
        let doc = load(file)?;
        for test in at(&doc, &["tests"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for case in at(test, &["alert_rule_test"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let name = str_at(case, &["alertname"]).to_owned();
                ensure!(
                    alerts.contains_key(&name),
                    "{} tests unknown alert {name}",
                    file.display()
                );
                let expected = at(case, &["exp_alerts"]).and_then(Value::as_sequence);
                if expected.is_some_and(|e| !e.is_empty()) {
                    firing.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).context("read the runbooks")?;
    let headings: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for (name, anchor) in &alerts {
        ensure!(firing.contains(name), "alert {name} has no firing test");
        ensure!(
            quiet.contains(name),
            "alert {name} has no test where it stays quiet"
        );
        ensure!(
            *anchor == name.to_lowercase() && headings.contains(anchor),
            "alert {name}: runbook_url anchor #{anchor} has no `### {name}` section in deploy/rules/README.md"
        );
    }
    eprintln!(
        "xtask: {} alerts, each with a firing and a quiet test and a runbook",
        alerts.len()
    );
    Ok(())
}
