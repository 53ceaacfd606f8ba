//! Structural checks of the generated dashboards, and PromQL syntax through promtool.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Variables Grafana defines itself.
const BUILTIN: &[&str] = &["__rate_interval", "__interval", "__range"];

/// Checks every dashboard and runs `promtool check rules` over all queries.
pub fn structure(rendered: &[(&str, String)], work: &Path) -> Result<()> {
    let mut uids = BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    let mut count = 0;
    for (file, text) in rendered {
        let d: Value = serde_json::from_str(text).with_context(|| format!("{file} is not JSON"))?;
        let uid = d["uid"].as_str().unwrap_or("");
        ensure!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: bad uid {uid:?}"
        );
        ensure!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        ensure!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        let vars = variables(file, &d)?;
        for required in ["datasource", "cluster", "node"] {
            ensure!(vars.contains(required), "{file}: no ${required} variable");
        }
        let panels = d["panels"].as_array().context("no panels")?;
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?");
            ensure!(
                ids.insert(p["id"].as_u64()),
                "{file}: panel id of {title} repeats"
            );
            let (x, w) = (p["gridPos"]["x"].as_u64(), p["gridPos"]["w"].as_u64());
            ensure!(
                matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
                "{file}: panel {title} does not fit the 24-column grid"
            );
            if p["type"] == "row" {
                continue;
            }
            ensure!(
                p["datasource"]["uid"] == "${datasource}",
                "{file}: panel {title} does not use $datasource"
            );
            let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
            ensure!(!targets.is_empty(), "{file}: panel {title} has no query");
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or("");
                ensure!(!expr.is_empty(), "{file}: panel {title} has an empty query");
                for used in used_variables(expr) {
                    ensure!(
                        vars.contains(used.as_str()) || BUILTIN.contains(&used.as_str()),
                        "{file}: panel {title} uses undefined ${used}"
                    );
                }
                count += 1;
                let _ = writeln!(
                    rules,
                    "      - record: dashboard_query_{count}\n        expr: {}",
                    serde_json::to_string(&substitute(expr))?
                );
            }
        }
    }
    // promtool parses every query as a recording rule's expression: syntax errors, unknown
    // functions and type errors (e.g. rate() of an instant vector) fail here.
    let path = work.join("dashboard-queries.yaml");
    std::fs::write(&path, rules)?;
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .context("cannot run promtool")?;
    if !out.status.success() {
        bail!(
            "dashboard queries are not valid PromQL ({}):\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "xtask: {} dashboards well-formed, {count} queries valid PromQL",
        rendered.len()
    );
    Ok(())
}

/// Names of the template variables; their own queries may use only earlier ones.
fn variables(file: &str, d: &Value) -> Result<BTreeSet<String>> {
    let mut vars = BTreeSet::new();
    for v in d["templating"]["list"]
        .as_array()
        .context("no templating")?
    {
        let name = v["name"].as_str().unwrap_or("").to_owned();
        let query = v["definition"].as_str().unwrap_or("");
        for used in used_variables(query) {
            ensure!(
                vars.contains(&used),
                "{file}: variable {name} uses ${used} defined later"
            );
        }
        vars.insert(name);
    }
    Ok(vars)
}

/// `$name` references in a query.
fn used_variables(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The query as Grafana would send it with every variable on "All".
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$cluster", ".*")
        .replace("$node", ".*")
        .replace("$namespace", ".*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_variables_and_substitutes_them() {
        let expr = r#"rate(x{node=~"$node",a=~"$cluster"}[$__rate_interval])"#;
        assert_eq!(used_variables(expr), ["node", "cluster", "__rate_interval"]);
        assert_eq!(substitute(expr), r#"rate(x{node=~".*",a=~".*"}[5m])"#);
    }
}
