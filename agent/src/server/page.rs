//! The agent's own status page at `/`: the `/api/v1/status` document as
//! HTML for a person. Rendered on the server from the same JSON (so the two
//! can never disagree), self-contained (no script, font or CDN), refreshed by
//! the browser every few seconds.

use std::fmt::Write as _;

use serde_json::Value;

/// Seconds between browser refreshes.
const REFRESH_SECONDS: u32 = 5;

/// How one table cell is shown.
#[derive(Clone, Copy)]
enum Cell {
    /// The value as text.
    Text,
    /// A Unix time in seconds, shown as an age ("12s ago").
    AgeSeconds,
    /// A Unix time in milliseconds, shown as an age.
    AgeMillis,
    /// Seconds, shown in milliseconds.
    Millis,
    /// Bytes, shown in binary units.
    Bytes,
    /// An object of counters, shown as `key=value` pairs.
    Pairs,
    /// `up`/`loaded`/`true` green, `down`/`failed` red.
    State,
    /// An error message.
    Error,
    /// A counter, shown as its average rate per second since the agent started.
    PerSecond,
}

/// One column: the JSON field, its header and how to show it.
type Column = (&'static str, &'static str, Cell);

const TARGET_COLUMNS: &[Column] = &[
    ("job", "job", Cell::Text),
    ("instance", "instance", Cell::Text),
    ("health", "health", Cell::State),
    ("last_scrape", "last scrape", Cell::AgeSeconds),
    ("last_scrape_duration_seconds", "duration", Cell::Millis),
    ("last_samples", "samples", Cell::Text),
    ("series", "series", Cell::Text),
    ("last_error", "last error", Cell::Error),
];

const DISCOVERED_COLUMNS: &[Column] = &[
    ("component", "component", Cell::Text),
    ("source", "found by", Cell::Text),
    ("address", "address", Cell::Text),
    ("scheme", "scheme", Cell::Text),
    ("auth", "auth", Cell::Text),
    ("note", "note", Cell::Text),
];

const REMOTE_COLUMNS: &[Column] = &[
    ("name", "endpoint", Cell::Text),
    ("protocol", "protocol", Cell::Text),
    ("queue_length", "queued samples", Cell::Text),
    ("disk_bytes", "queue on disk", Cell::Bytes),
    ("shards", "shards", Cell::Text),
    ("samples_sent", "sent", Cell::Text),
    ("samples_sent", "sent/s (avg)", Cell::PerSecond),
    ("samples_retried", "retried", Cell::Text),
    ("samples_failed", "failed", Cell::Text),
    ("samples_dropped", "dropped", Cell::Pairs),
    ("last_success_unix_ms", "last success", Cell::AgeMillis),
    ("last_error", "last error", Cell::Error),
];

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .5em}\
.meta{color:#5a6270}table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:.5em}\
th,td{border:1px solid #dde1e7;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.none{color:#8a919c}\
.err{color:#b3261e;max-width:40em;word-break:break-word}";

/// Renders the page from the status document. `now` is the current Unix time
/// in seconds (for "ago" cells).
pub fn render(status: &Value, now: f64) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let node = text(&status["node"]);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>crowsnest on {}</title><style>{STYLE}</style></head><body>",
        escape(&node)
    );
    let ready = status["ready"].as_bool().unwrap_or(false);
    let _ = write!(
        out,
        "<h1 id=\"node\">crowsnest on {}</h1><p class=\"meta\">version {} · up {} · {} · \
         <a href=\"/api/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
        escape(&node),
        escape(&text(&status["version"])),
        duration(status["uptime_seconds"].as_f64().unwrap_or(0.0)),
        if ready {
            "<span class=\"ok\">ready</span>"
        } else {
            "<span class=\"bad\">not ready</span>"
        },
    );
    if let Some(kube) = status.get("kubernetes").filter(|k| !k.is_null()) {
        let _ = write!(
            out,
            "<h2>Kubernetes metadata</h2><p id=\"kubernetes\">mode {} · {} · {} pods cached{}</p>",
            escape(&text(&kube["mode"])),
            match (kube["mode"].as_str(), kube["synced"].as_bool()) {
                // Without an API server there is nothing to sync.
                (Some("plain-host"), _) => "<span class=\"none\">no pod watch</span>",
                (_, Some(true)) => "<span class=\"ok\">synced</span>",
                _ => "<span class=\"bad\">not synced</span>",
            },
            escape(&text(&kube["pods"])),
            kube["reason"]
                .as_str()
                .map(|r| format!(" · {}", escape(r)))
                .unwrap_or_default(),
        );
    }
    collectors(&mut out, status);
    let clock = Clock {
        now,
        uptime: status["uptime_seconds"].as_f64().unwrap_or(0.0),
    };
    section(
        &mut out,
        "targets",
        "Scrape targets",
        &status["targets"],
        TARGET_COLUMNS,
        clock,
    );
    section(
        &mut out,
        "discovered",
        "Discovered control plane",
        &status["discovered"],
        DISCOVERED_COLUMNS,
        clock,
    );
    section(
        &mut out,
        "remote-write",
        "Remote write",
        &status["remote_write"],
        REMOTE_COLUMNS,
        clock,
    );
    out.push_str("</body></html>\n");
    out
}

/// One row per program: its collector's state, and the kernel's own count
/// of runs and time spent (ns/event; events/s averaged since start).
fn collectors(out: &mut String, status: &Value) {
    out.push_str("<h2>eBPF collectors</h2>");
    let Some(list) = status["collectors"].as_array().filter(|l| !l.is_empty()) else {
        out.push_str("<p class=\"none\" id=\"collectors\">none configured</p>");
        return;
    };
    let uptime = status["uptime_seconds"].as_f64().unwrap_or(0.0).max(1.0);
    out.push_str(
        "<table id=\"collectors\"><tr><th>collector</th><th>state</th><th>program</th>\
         <th>events/s</th><th>ns/event</th><th>reason</th></tr>",
    );
    for c in list {
        let programs = c["programs"].as_array().cloned().unwrap_or_default();
        let rows = programs.len().max(1);
        let _ = write!(
            out,
            "<tr><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td>",
            escape(&text(&c["name"])),
            state(&c["state"]),
        );
        if programs.is_empty() {
            let _ = write!(
                out,
                "<td colspan=\"3\"></td><td class=\"err\">{}</td></tr>",
                escape(&text(&c["reason"]))
            );
            continue;
        }
        for (i, p) in programs.iter().enumerate() {
            if i > 0 {
                out.push_str("<tr>");
            }
            let runs = p["run_count"].as_f64().unwrap_or(0.0);
            let seconds = p["run_time_seconds"].as_f64().unwrap_or(0.0);
            let per_event = if runs > 0.0 {
                format!("{:.0}", seconds * 1e9 / runs)
            } else {
                "–".to_owned()
            };
            let reason = p["reason"]
                .as_str()
                .or_else(|| c["reason"].as_str())
                .unwrap_or("");
            let _ = write!(
                out,
                "<td>{} {}</td><td class=\"num\">{:.1}</td><td class=\"num\">{per_event}</td><td class=\"err\">{}</td></tr>",
                escape(&text(&p["name"])),
                state(&p["state"]),
                runs / uptime,
                escape(reason),
            );
        }
    }
    out.push_str("</table>");
}

/// Times a cell may need: the current Unix time and the agent's uptime.
#[derive(Clone, Copy)]
struct Clock {
    now: f64,
    uptime: f64,
}

fn section(
    out: &mut String,
    id: &str,
    title: &str,
    rows: &Value,
    columns: &[Column],
    clock: Clock,
) {
    let _ = write!(out, "<h2>{title}</h2>");
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        let _ = write!(out, "<p class=\"none\" id=\"{id}\">none</p>");
        return;
    };
    let _ = write!(out, "<table id=\"{id}\"><tr>");
    for (_, header, _) in columns {
        let _ = write!(out, "<th>{header}</th>");
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (field, _, cell) in columns {
            out.push_str(&render_cell(&row[*field], *cell, clock));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn render_cell(v: &Value, cell: Cell, clock: Clock) -> String {
    let now = clock.now;
    if v.is_null() {
        return "<td class=\"none\">–</td>".to_owned();
    }
    match cell {
        Cell::Text if v.is_number() => format!("<td class=\"num\">{}</td>", escape(&text(v))),
        Cell::Text => format!("<td>{}</td>", escape(&text(v))),
        Cell::Error => format!("<td class=\"err\">{}</td>", escape(&text(v))),
        Cell::State => format!("<td>{}</td>", state(v)),
        Cell::AgeSeconds => age(v.as_f64(), now),
        Cell::AgeMillis => age(v.as_f64().map(|ms| ms / 1000.0), now),
        Cell::Millis => format!(
            "<td class=\"num\">{:.1} ms</td>",
            v.as_f64().unwrap_or(0.0) * 1000.0
        ),
        Cell::Bytes => format!(
            "<td class=\"num\">{}</td>",
            bytes(v.as_f64().unwrap_or(0.0))
        ),
        Cell::PerSecond => format!(
            "<td class=\"num\">{:.1}</td>",
            v.as_f64().unwrap_or(0.0) / clock.uptime.max(1.0)
        ),
        Cell::Pairs => {
            let pairs: Vec<String> = v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(_, n)| n.as_f64().unwrap_or(0.0) != 0.0)
                        .map(|(k, n)| format!("{}={}", escape(k), escape(&text(n))))
                        .collect()
                })
                .unwrap_or_default();
            if pairs.is_empty() {
                "<td class=\"num\">0</td>".to_owned()
            } else {
                format!("<td class=\"bad\">{}</td>", pairs.join(" "))
            }
        }
    }
}

fn age(t: Option<f64>, now: f64) -> String {
    match t {
        Some(t) => format!("<td>{} ago</td>", duration((now - t).max(0.0))),
        None => "<td class=\"none\">never</td>".to_owned(),
    }
}

fn state(v: &Value) -> String {
    let s = text(v);
    let class = match s.as_str() {
        "up" | "loaded" | "true" => "ok",
        "down" | "failed" | "false" => "bad",
        _ => "none",
    };
    format!("<span class=\"{class}\">{}</span>", escape(&s))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn duration(secs: f64) -> String {
    // Whole seconds are precise enough for a page refreshed every 5 s.
    let s = secs as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Value {
        json!({
            "version": "0.1.0", "node": "node-<1>", "uptime_seconds": 3725.0, "ready": true,
            "kubernetes": {"mode": "plain-host", "reason": "no service account", "synced": false, "pods": 0},
            "collectors": [
                {"name": "cpu", "state": "loaded", "reason": null, "programs": [
                    {"name": "sched_switch", "state": "loaded", "reason": null, "run_time_seconds": 0.5, "run_count": 5000000}]},
                {"name": "tcp", "state": "failed", "reason": "missing CAP_BPF", "programs": []}
            ],
            "targets": [{"job": "etcd", "instance": "127.0.0.1:4001", "health": "down",
                "last_scrape": 990.0, "last_scrape_duration_seconds": 0.0123, "last_samples": 0,
                "series": 0, "last_error": "TLS: <bad certificate>"}],
            "discovered": [],
            "remote_write": [{"name": "vm", "protocol": "prometheus.WriteRequest", "queue_length": 12,
                "disk_bytes": 3145728, "shards": 2, "samples_sent": 10, "samples_retried": 0,
                "samples_failed": 0, "samples_dropped": {"disk_full": 5, "rejected": 0},
                "last_success_unix_ms": 999000, "last_error": null}]
        })
    }

    #[test]
    fn renders_every_section_escaped() {
        let html = render(&sample(), 1000.0);
        assert!(html.contains("crowsnest on node-&lt;1&gt;"), "node escaped");
        assert!(html.contains("up 1h2m"));
        assert!(html.contains("mode plain-host") && html.contains("no pod watch"));
        assert!(html.contains("sched_switch"));
        assert!(
            html.contains("<td class=\"num\">100</td>"),
            "ns/event = 0.5 s / 5M runs"
        );
        assert!(html.contains("missing CAP_BPF"));
        assert!(
            html.contains("TLS: &lt;bad certificate&gt;"),
            "errors escaped"
        );
        assert!(html.contains("10s ago"), "last scrape age");
        assert!(html.contains("12.3 ms"));
        assert!(html.contains("3.0 MiB"));
        assert!(
            html.contains("<th>sent/s (avg)</th>") && html.contains("<td class=\"num\">0.0</td>")
        );
        assert!(html.contains("disk_full=5") && !html.contains("rejected=0"));
        assert!(html.contains("<p class=\"none\" id=\"discovered\">none</p>"));
        assert!(!html.contains("<script"), "no script, nothing fetched");
        assert!(html.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn missing_fields_show_a_dash_not_a_panic() {
        let html = render(&json!({"targets": [{"job": "a"}]}), 0.0);
        assert!(html.contains("<td class=\"none\">–</td>"));
        assert!(html.contains("none configured"));
    }
}
