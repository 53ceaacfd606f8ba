//! Ingest of family metadata, created timestamps and exemplars.

use std::sync::Arc;

use super::*;
use crate::model::MetricType;
use crate::relabel::RelabelConfig;

fn rules(keep_exemplars: bool) -> IngestRules {
    IngestRules {
        keep_exemplars,
        ..super::tests::rules()
    }
}

fn scrape(cache: &mut SeriesCache, r: &IngestRules, body: &str, format: Format) -> Vec<Sample> {
    let mut out = Vec::new();
    ingest(cache, r, body.as_bytes(), format, 5000, &mut out).expect("ingest");
    out
}

/// The sample whose series is `text` (Prometheus notation).
fn find<'s>(out: &'s [Sample], text: &str) -> &'s Sample {
    out.iter()
        .find(|s| s.series.labels().to_string() == text)
        .unwrap_or_else(|| panic!("no {text} in {out:#?}"))
}

const HISTOGRAM: &str = "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\n\
rpc_seconds_bucket{le=\"1\"} 1\nrpc_seconds_bucket{le=\"+Inf\"} 2\nrpc_seconds_sum 3\n\
rpc_seconds_count 2\nother 1\n# HELP up_total Ups.\n# TYPE up_total counter\nup_total 4\n";

#[test]
fn family_help_reaches_suffixed_samples_and_only_them() {
    let mut c = SeriesCache::default();
    let out = scrape(&mut c, &rules(false), HISTOGRAM, Format::Prometheus);
    let first = &out[0].series;
    for s in &out[..4] {
        assert_eq!(s.series.help(), "RPC latency.", "{}", s.series.labels());
        assert_eq!(s.series.metric_type(), MetricType::Histogram);
        // One allocation per family, shared by its series.
        assert!(Arc::ptr_eq(
            s.series.metadata().expect("set"),
            first.metadata().expect("set")
        ));
    }
    assert!(
        out[4].series.metadata().is_none(),
        "`other` is not rpc_seconds"
    );
    assert_eq!(
        out[5].series.help(),
        "Ups.",
        "text counter named with _total"
    );
    assert!(
        out.iter().all(|s| s.extra.is_none()),
        "text format has no extras"
    );
}

#[test]
fn unchanged_metadata_keeps_series_and_changed_help_rebuilds_them() {
    let mut c = SeriesCache::default();
    let r = rules(false);
    let first = scrape(&mut c, &r, HISTOGRAM, Format::Prometheus);
    let second = scrape(&mut c, &r, HISTOGRAM, Format::Prometheus);
    for (a, b) in first.iter().zip(&second) {
        assert!(Arc::ptr_eq(&a.series, &b.series), "{}", a.series.labels());
    }
    let changed = HISTOGRAM.replace("RPC latency.", "RPC latency (s).");
    let mut out = Vec::new();
    let stats = ingest(
        &mut c,
        &r,
        changed.as_bytes(),
        Format::Prometheus,
        6000,
        &mut out,
    )
    .expect("ingest");
    assert_eq!((stats.added, stats.stale), (0, 0));
    assert_eq!(out[0].series.help(), "RPC latency (s).");
    assert_eq!(out[0].series.labels(), first[0].series.labels());
    assert_eq!(out[5].series.help(), "Ups.");
    assert!(Arc::ptr_eq(&out[5].series, &first[5].series));
}

const OM_COUNTER: &str = "# TYPE req_bytes counter\n# UNIT req_bytes bytes\n# HELP req_bytes Bytes.\n\
req_bytes_total{a=\"1\"} 3\nreq_bytes_created{a=\"1\"} 1700000000.5\n\
req_bytes_total{a=\"2\"} 1\nreq_bytes_created{a=\"2\"} 1600000000\n# EOF\n";

#[test]
fn openmetrics_created_dates_the_samples_of_its_point() {
    let mut c = SeriesCache::default();
    let out = scrape(&mut c, &rules(false), OM_COUNTER, Format::OpenMetrics);
    let one = find(&out, r#"req_bytes_total{a="1", instance="i:1", job="j"}"#);
    let two = find(&out, r#"req_bytes_total{a="2", instance="i:1", job="j"}"#);
    assert_eq!(one.created_ms(), Some(1_700_000_000_500));
    assert_eq!(two.created_ms(), Some(1_600_000_000_000));
    assert_eq!((one.series.unit(), one.series.help()), ("bytes", "Bytes."));
    // `_created` stays a series of its own, as Prometheus 2 sends it.
    let created = find(&out, r#"req_bytes_created{a="1", instance="i:1", job="j"}"#);
    assert_eq!(created.value, 1_700_000_000.5);
    assert_eq!(created.created_ms(), None);
    assert_eq!(created.series.unit(), "bytes");
    // The cached second scrape attaches them again.
    let again = scrape(&mut c, &rules(false), OM_COUNTER, Format::OpenMetrics);
    assert_eq!(
        find(&again, r#"req_bytes_total{a="2", instance="i:1", job="j"}"#).created_ms(),
        Some(1_600_000_000_000)
    );
}

#[test]
fn histogram_and_summary_points_match_without_le_and_quantile() {
    let body = "# TYPE h histogram\nh_bucket{a=\"x\",le=\"1\"} 1\nh_bucket{a=\"x\",le=\"+Inf\"} 2\n\
h_count{a=\"x\"} 2\nh_sum{a=\"x\"} 3\nh_created{a=\"x\"} 100\n\
h_bucket{a=\"y\",le=\"+Inf\"} 0\nh_count{a=\"y\"} 0\nh_sum{a=\"y\"} 0\n\
# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\ns_sum 1\ns_created 200\n# EOF\n";
    let out = scrape(
        &mut SeriesCache::default(),
        &rules(false),
        body,
        Format::OpenMetrics,
    );
    let created: Vec<(String, Option<i64>)> = out
        .iter()
        .map(|s| {
            (
                s.series.labels().metric_name().unwrap_or("").to_owned(),
                s.created_ms(),
            )
        })
        .collect();
    let of = |name: &str, with: &str| {
        out.iter()
            .filter(|s| {
                s.series.labels().metric_name() == Some(name)
                    && s.series.labels().get("a").unwrap_or("") == with
            })
            .map(Sample::created_ms)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("h_bucket", "x"),
        [Some(100_000), Some(100_000)],
        "{created:?}"
    );
    assert_eq!(
        (of("h_count", "x"), of("h_sum", "x")),
        (vec![Some(100_000)], vec![Some(100_000)])
    );
    assert_eq!(of("h_bucket", "y"), [None], "another point has no _created");
    assert_eq!(of("s", ""), [Some(200_000)]);
    assert_eq!(
        (of("s_count", ""), of("s_sum", "")),
        (vec![Some(200_000)], vec![Some(200_000)])
    );
    // Buckets of one point share one allocation.
    let x: Vec<&Sample> = out
        .iter()
        .filter(|s| s.series.labels().get("a") == Some("x"))
        .collect();
    assert!(Arc::ptr_eq(
        x[0].extra.as_ref().expect("set"),
        x[1].extra.as_ref().expect("set")
    ));
}

#[test]
fn created_before_its_samples_and_dropped_created_series_still_count() {
    let mut r = rules(false);
    let cfg: Vec<RelabelConfig> =
        serde_yaml::from_str("- {source_labels: [__name__], regex: '.*_created', action: drop}")
            .expect("yaml");
    r.metric_relabel = Rules::compile(&cfg).expect("compile");
    let body = "# TYPE c counter\nc_created 10\nc_total 1\n# EOF\n";
    let out = scrape(&mut SeriesCache::default(), &r, body, Format::OpenMetrics);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].created_ms(), Some(10_000));
}

#[test]
fn text_format_created_is_just_a_series() {
    let body = "# TYPE c counter\nc_total 1\nc_created 10\n";
    let out = scrape(
        &mut SeriesCache::default(),
        &rules(false),
        body,
        Format::Prometheus,
    );
    assert!(out.iter().all(|s| s.created_ms().is_none()));
    assert_eq!(out.len(), 2);
}

const OM_EXEMPLAR: &str = "# TYPE h histogram\n\
h_bucket{le=\"1\"} 1 # {trace_id=\"abc\",span_id=\"\"} 0.5 1700000000.25\n\
h_bucket{le=\"+Inf\"} 2 # {trace_id=\"def\"} 7\nh_count 2\nh_sum 7.5\nh_created 100\n# EOF\n";

#[test]
fn exemplars_are_kept_only_when_asked_for() {
    let out = scrape(
        &mut SeriesCache::default(),
        &rules(true),
        OM_EXEMPLAR,
        Format::OpenMetrics,
    );
    let e = out[0].exemplar().expect("exemplar");
    assert_eq!(e.labels, Labels::from_pairs([("trace_id", "abc")]));
    assert_eq!((e.value, e.timestamp_ms), (0.5, 1_700_000_000_250));
    let e = out[1].exemplar().expect("exemplar");
    assert_eq!(
        (e.value, e.timestamp_ms),
        (7.0, 5000),
        "no timestamp: the sample's"
    );
    // The created time joins the exemplar in the same extras.
    assert_eq!(
        (out[0].created_ms(), out[2].created_ms()),
        (Some(100_000), Some(100_000))
    );
    assert!(out[2].exemplar().is_none());

    let out = scrape(
        &mut SeriesCache::default(),
        &rules(false),
        OM_EXEMPLAR,
        Format::OpenMetrics,
    );
    assert!(out.iter().all(|s| s.exemplar().is_none()));
}
