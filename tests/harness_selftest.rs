//! Proves the harness against the real servers before any agent exists: hand-encoded
//! remote-write requests land in Prometheus and VictoriaMetrics and can be queried back,
//! and Prometheus scrapes the in-process exporter.

use std::time::Duration;

use anyhow::Result;
use crowsnest_tests::remote_write::{TimeSeries, WriteRequest, now_ms, push};
use crowsnest_tests::victoria::STALE_NAN;
use crowsnest_tests::{
    Exporter, PROMETHEUS_BIN, Prometheus, PrometheusConfig, VICTORIA_METRICS_BIN, VictoriaMetrics,
    require_binary,
};

const WAIT: Duration = Duration::from_secs(20);

fn request(now: i64) -> WriteRequest {
    WriteRequest {
        timeseries: vec![
            TimeSeries::new("selftest_value", &[("case", "a"), ("job", "selftest")])
                .sample(1.0, now - 2_000)
                .sample(42.5, now - 1_000),
            TimeSeries::new("selftest_value", &[("case", "b"), ("job", "selftest")])
                .sample(-7.0, now - 1_000),
        ],
    }
}

#[tokio::test]
async fn prometheus_receives_remote_write_and_answers_queries() -> Result<()> {
    if require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    let prometheus = Prometheus::start().await?;
    let now = now_ms();
    push(
        prometheus.http(),
        &prometheus.remote_write_url(),
        &request(now),
    )
    .await?;

    let result = prometheus
        .wait_for("selftest_value", |r| r.len() == 2, WAIT)
        .await?;
    let by_case: Vec<(&str, f64)> = result
        .iter()
        .map(|(labels, value)| (labels["case"].as_str(), *value))
        .collect();
    assert!(
        by_case.contains(&("a", 42.5)) && by_case.contains(&("b", -7.0)),
        "{by_case:?}"
    );

    let series = prometheus.series(r#"{job="selftest"}"#).await?;
    assert_eq!(series.len(), 2, "{series:?}");

    let end = std::time::SystemTime::now();
    let range = prometheus
        .query_range(
            r#"selftest_value{case="a"}"#,
            end - Duration::from_secs(10),
            end,
            Duration::from_secs(1),
        )
        .await?;
    assert_eq!(range.len(), 1);
    assert!(range[0].1.iter().any(|(_, v)| *v == 42.5), "{range:?}");

    let sum = prometheus.query("sum(selftest_value)").await?;
    assert_eq!(sum[0].1, 35.5);
    Ok(())
}

#[tokio::test]
async fn victoria_metrics_receives_remote_write_and_exports_raw_samples() -> Result<()> {
    if require_binary(VICTORIA_METRICS_BIN).is_skip() {
        return Ok(());
    }
    let vm = VictoriaMetrics::start().await?;
    let now = now_ms();
    push(vm.http(), &vm.remote_write_url(), &request(now)).await?;

    let result = vm
        .wait_for("selftest_value", |r| r.len() == 2, WAIT)
        .await?;
    assert!(
        result.iter().any(|(l, v)| l["case"] == "a" && *v == 42.5),
        "{result:?}"
    );

    let exported = vm.export(r#"{case="a"}"#).await?;
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0].values, vec![1.0, 42.5]);
    assert_eq!(exported[0].timestamps, vec![now - 2_000, now - 1_000]);
    assert_eq!(exported[0].metric["job"], "selftest");

    // Special values survive the round trip; VictoriaMetrics exports them bare (not JSON).
    let special = TimeSeries::new("selftest_special", &[("job", "selftest")])
        .sample(f64::INFINITY, now - 3_000)
        .sample(f64::NEG_INFINITY, now - 2_000)
        .sample(STALE_NAN, now - 1_000);
    let request = WriteRequest {
        timeseries: vec![special],
    };
    push(vm.http(), &vm.remote_write_url(), &request).await?;
    let exported = vm.export("selftest_special").await?;
    assert_eq!(exported.len(), 1, "{exported:?}");
    let values = &exported[0].values;
    assert_eq!(&values[..2], &[f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(
        values[2].to_bits(),
        STALE_NAN.to_bits(),
        "staleness marker kept"
    );
    Ok(())
}

#[tokio::test]
async fn prometheus_scrapes_the_exporter() -> Result<()> {
    if require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    let exporter = Exporter::start().await?;
    exporter.serve_text("# TYPE selftest_scraped gauge\nselftest_scraped{kind=\"text\"} 3.25\n");
    let config = PrometheusConfig::default()
        .scrape_interval(Duration::from_millis(200))
        .scrape("exporter", &exporter.target());
    let prometheus = Prometheus::start_with(&config).await?;

    let result = prometheus
        .wait_for("selftest_scraped", |r| !r.is_empty(), WAIT)
        .await?;
    assert_eq!(result[0].1, 3.25);
    assert_eq!(result[0].0["job"], "exporter");
    assert_eq!(result[0].0["instance"], exporter.target());
    assert!(exporter.requests() >= 1);

    // The body is read at every scrape: a new value shows up, now over OpenMetrics.
    exporter.serve_openmetrics(
        "# TYPE selftest_scraped gauge\nselftest_scraped{kind=\"text\"} 9\n# EOF\n",
    );
    prometheus
        .wait_for(
            "selftest_scraped",
            |r| r.first().is_some_and(|s| s.1 == 9.0),
            WAIT,
        )
        .await?;
    let accept = exporter
        .last_request()
        .and_then(|r| r.headers.get("accept").cloned());
    assert!(
        accept.is_some_and(|a| a.to_str().is_ok_and(|a| a.contains("openmetrics"))),
        "Prometheus asks for OpenMetrics"
    );
    Ok(())
}
