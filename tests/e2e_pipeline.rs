//! End to end: crowsnest scrapes in-process targets and remote-writes to a real
//! Prometheus and a real VictoriaMetrics. A second, reference Prometheus scrapes
//! the same targets itself; what arrives through crowsnest must be exactly what
//! Prometheus would have stored.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use crowsnest_tests::victoria::STALE_NAN;
use crowsnest_tests::wait;
use crowsnest_tests::{
    Agent, Exporter, LabelSet, PROMETHEUS_BIN, Prometheus, PrometheusConfig, Signal,
    VICTORIA_METRICS_BIN, VictoriaMetrics, require_binary,
};

const WAIT: Duration = Duration::from_secs(30);

/// Every metric type of the text format, plus the cases remote write is strict
/// about: an empty label value, and labels clashing with the target's.
const TEXT_BODY: &str = r#"# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 1027
http_requests_total{code="500",method="post"} 3
# TYPE room_temperature_celsius gauge
room_temperature_celsius{room="a",empty=""} -3.5
room_temperature_celsius{room="b"} 21.25
# TYPE request_latency_seconds histogram
request_latency_seconds_bucket{le="0.1"} 5
request_latency_seconds_bucket{le="1"} 9
request_latency_seconds_bucket{le="+Inf"} 10
request_latency_seconds_sum 4.2
request_latency_seconds_count 10
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 0.05
rpc_duration_seconds{quantile="0.99"} 1.5
rpc_duration_seconds_sum 30
rpc_duration_seconds_count 300
relayed_value{job="inner",instance="elsewhere"} 7
untyped_value 1e+06
"#;

const OPENMETRICS_BODY: &str = r#"# TYPE jobs counter
# HELP jobs Jobs processed.
jobs_total{queue="a"} 17
jobs_created{queue="a"} 1.7e+09
# TYPE build info
build_info{version="1.2.3"} 1
# TYPE feature stateset
feature{feature="a"} 1
feature{feature="b"} 0
# TYPE queue_size_bytes gauge
# UNIT queue_size_bytes bytes
queue_size_bytes 4096
# EOF
"#;

fn agent_config(targets: &[(&str, String)], remote_urls: &[String]) -> String {
    let jobs: Vec<String> = targets
        .iter()
        .map(|(job, target)| {
            format!("  - job_name: {job}\n    static_configs: [{{targets: [\"{target}\"]}}]\n")
        })
        .collect();
    let remotes: Vec<String> = remote_urls
        .iter()
        .map(|url| format!("  - url: {url}\n    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n"))
        .collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nlogging: {{level: debug, format: text}}\nscrape_configs:\n{}remote_write:\n{}",
        jobs.concat(),
        remotes.concat()
    )
}

/// Label sets of every series of `job`, with the synthetic scrape series whose
/// values differ between runs kept (their identity must match too).
async fn series_of(prom: &crowsnest_tests::PromApi, job: &str) -> Result<BTreeSet<LabelSet>> {
    Ok(prom
        .series(&format!("{{job=\"{job}\"}}"))
        .await?
        .into_iter()
        .collect())
}

/// The entries of `a` and `b` that are not in both.
fn diff(a: &[(LabelSet, f64)], b: &[(LabelSet, f64)]) -> Vec<String> {
    let fmt = |(l, v): &(LabelSet, f64)| format!("{l:?} {v}");
    let a: BTreeSet<String> = a.iter().map(fmt).collect();
    let b: BTreeSet<String> = b.iter().map(fmt).collect();
    a.symmetric_difference(&b).cloned().collect()
}

#[tokio::test]
async fn series_through_crowsnest_match_prometheus_own_scrape() -> Result<()> {
    for bin in [PROMETHEUS_BIN, VICTORIA_METRICS_BIN] {
        if require_binary(bin).is_skip() {
            return Ok(());
        }
    }
    let text = Exporter::start().await?;
    text.serve_text(TEXT_BODY);
    let om = Exporter::start().await?;
    om.serve_openmetrics(OPENMETRICS_BODY);
    let broken = Exporter::start().await?;
    broken.serve_text("");
    broken.set_status(500);
    // Malformed halfway: the scrape fails whole, and both report the
    // samples read before the error.
    let malformed = Exporter::start().await?;
    malformed.serve_text("ok_one 1\nok_two 2\nbroken{le=\"1\" 3\n");

    let reference = Prometheus::start_with(
        &PrometheusConfig::default()
            .scrape("app", &text.target())
            .scrape("om", &om.target())
            .scrape("malformed", &malformed.target()),
    )
    .await?;
    let receiver = Prometheus::start().await?;
    let victoria = VictoriaMetrics::start().await?;
    let mut agent = Agent::start(&agent_config(
        &[
            ("app", text.target()),
            ("om", om.target()),
            ("malformed", malformed.target()),
            ("broken", broken.target()),
        ],
        &[receiver.remote_write_url(), victoria.remote_write_url()],
    ))
    .await?;

    // A few scrapes in, both sides hold the full series sets.
    for prom in [receiver.api(), reference.api()] {
        prom.wait_for(
            "count(scrape_series_added{job=~\"app|om\"} >= 0)",
            |r| r.first().is_some_and(|(_, v)| *v == 2.0),
            WAIT,
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    for job in ["app", "om", "malformed"] {
        let want = series_of(reference.api(), job).await?;
        let got = series_of(receiver.api(), job).await?;
        ensure!(
            want == got,
            "job {job}: series differ\nonly in reference: {:#?}\nonly via crowsnest: {:#?}",
            want.difference(&got).collect::<Vec<_>>(),
            got.difference(&want).collect::<Vec<_>>()
        );
        let vm = series_of(victoria.api(), job).await?;
        ensure!(want == vm, "job {job}: VictoriaMetrics differs: {vm:#?}");
    }

    // Values are exact, for every series except the timing-dependent ones.
    let query =
        r#"{job=~"app|om|malformed",__name__!~"scrape_duration_seconds|scrape_series_added"}"#;
    let mut want = reference.query(query).await?;
    let mut got = receiver.query(query).await?;
    let mut vm = victoria.query(query).await?;
    for v in [&mut want, &mut got, &mut vm] {
        v.sort_by(|a, b| a.0.cmp(&b.0));
    }
    ensure!(
        want.iter()
            .any(|(l, v)| l["__name__"] == "up" && l["job"] == "malformed" && *v == 0.0),
        "the malformed target is down: {want:?}"
    );
    ensure!(want == got, "values differ: {:#?}", diff(&want, &got));
    ensure!(
        want == vm,
        "VictoriaMetrics values differ: {:#?}",
        diff(&want, &vm)
    );
    let clash = got
        .iter()
        .find(|(l, _)| l["__name__"] == "relayed_value")
        .context("relayed_value arrived")?;
    assert_eq!(clash.0["exported_job"], "inner");
    assert_eq!(clash.0["exported_instance"], "elsewhere");
    assert_eq!(clash.0["job"], "app");
    assert!(
        got.iter().all(|(l, _)| !l.contains_key("empty")),
        "empty label values are dropped"
    );

    // A failing target is up=0; the agent's own metrics arrive too.
    receiver
        .wait_for(
            "up{job=\"broken\"}",
            |r| r.len() == 1 && r[0].1 == 0.0,
            WAIT,
        )
        .await?;
    victoria
        .wait_for(
            "up{job=\"broken\"}",
            |r| r.len() == 1 && r[0].1 == 0.0,
            WAIT,
        )
        .await?;
    let own = receiver
        .wait_for(
            "crowsnest_build_info{job=\"crowsnest\"}",
            |r| r.len() == 1,
            WAIT,
        )
        .await?;
    assert_eq!(own[0].1, 1.0);

    // A series that vanishes goes stale at once (no 5-minute lookback).
    text.serve_text(TEXT_BODY.replace("room_temperature_celsius{room=\"b\"} 21.25\n", ""));
    receiver
        .wait_for(
            "room_temperature_celsius{job=\"app\"}",
            |r| r.len() == 1,
            WAIT,
        )
        .await?;
    wait::poll(
        "a staleness marker in VictoriaMetrics",
        WAIT,
        Duration::from_millis(200),
        || async {
            let exported = victoria
                .export("room_temperature_celsius{room=\"b\"}")
                .await?;
            let marked = exported
                .iter()
                .any(|s| s.values.iter().any(|v| v.to_bits() == STALE_NAN.to_bits()));
            Ok(marked.then_some(()))
        },
    )
    .await?;

    // A target removed by a reload goes stale with all its series.
    let without_broken = format!(
        "{}server:\n  listen_address: {}\n",
        agent_config(
            &[
                ("app", text.target()),
                ("om", om.target()),
                ("malformed", malformed.target()),
            ],
            &[receiver.remote_write_url(), victoria.remote_write_url()],
        ),
        agent.listen_addr()
    );
    std::fs::write(agent.config_path(), without_broken)?;
    agent.instance().process().signal(Signal::HUP)?;
    receiver
        .wait_for("up{job=\"broken\"}", Vec::is_empty, WAIT)
        .await?;
    receiver
        .wait_for("up{job=\"app\"}", |r| r.len() == 1 && r[0].1 == 1.0, WAIT)
        .await?;
    let reloaded = agent.self_metrics().await?;
    ensure!(
        reloaded.contains("crowsnest_config_last_reload_successful 1"),
        "{reloaded}"
    );

    // A clean stop marks every series stale before the agent exits.
    let status = agent.stop()?;
    ensure!(status.success(), "agent exit: {status:?}");
    receiver
        .wait_for("up{job=~\"app|om\"}", Vec::is_empty, WAIT)
        .await?;
    Ok(())
}
