//! Exposition parser throughput: MB/s and samples/s on a generated
//! control-plane-like payload (apiserver/etcd/rest-client histograms with many
//! buckets and verb/resource/code labels), in both formats, plus the real
//! captures in `shared/conformance/payloads` when that folder exists.
//!
//! Run: `cargo bench -p crowsnest --bench parser -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crowsnest::scrape::parse::{Entry, Format, Parser, validate};

const VERBS: &[&str] = &["GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"];
const RESOURCES: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "nodes"),
    ("", "services"),
    ("", "endpoints"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "events"),
    ("", "namespaces"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("coordination.k8s.io", "leases"),
    ("discovery.k8s.io", "endpointslices"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("networking.k8s.io", "ingresses"),
];
const SCOPES: &[&str] = &["cluster", "namespace", "resource"];
const CODES: &[&str] = &["200", "201", "404", "409", "500"];
const REQUEST_BUCKETS: &[&str] = &[
    "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3", "4",
    "5", "6", "8", "10", "15", "20", "30", "45", "60",
];
const ETCD_OPS: &[&str] = &["get", "list", "create", "update", "delete", "listWithCount"];
const ETCD_BUCKETS: &[&str] = &[
    "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3", "4",
    "5", "6", "8", "10", "15", "20", "30", "45", "60",
];

/// Deterministic pseudo-random numbers so every run parses the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Writes one histogram series (buckets, sum, count) with cumulative counts.
fn histogram(out: &mut String, rng: &mut Lcg, name: &str, labels: &str, buckets: &[&str]) {
    let mut cumulative = 0;
    for le in buckets.iter().chain(std::iter::once(&"+Inf")) {
        cumulative += rng.next(500);
        writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}").expect("write");
    }
    let sum = cumulative as f64 * 0.173 + rng.next(1000) as f64 / 7.0;
    writeln!(out, "{name}_sum{{{labels}}} {sum}").expect("write");
    writeln!(out, "{name}_count{{{labels}}} {cumulative}").expect("write");
}

/// A kube-apiserver/controller-manager-like payload of a few MB.
fn control_plane_payload(format: Format) -> Vec<u8> {
    let om = format == Format::OpenMetrics;
    let mut rng = Lcg(42);
    let mut out = String::with_capacity(4 << 20);

    let name = "apiserver_request_duration_seconds";
    out.push_str("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n");
    writeln!(out, "# TYPE {name} histogram").expect("write");
    for verb in VERBS {
        for (group, resource) in RESOURCES {
            for scope in SCOPES {
                let labels = format!(
                    "component=\"apiserver\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\""
                );
                histogram(&mut out, &mut rng, name, &labels, REQUEST_BUCKETS);
            }
        }
    }

    let family = if om {
        "apiserver_request"
    } else {
        "apiserver_request_total"
    };
    // OpenMetrics names the counter family without `_total`; its samples keep it.
    writeln!(out, "# HELP {family} [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.").expect("write");
    writeln!(out, "# TYPE {family} counter").expect("write");
    for verb in VERBS {
        for (group, resource) in RESOURCES {
            for scope in SCOPES {
                for code in CODES {
                    writeln!(
                        out,
                        "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v1\"}} {}",
                        rng.next(10_000_000)
                    )
                    .expect("write");
                }
            }
        }
    }

    let name = "etcd_request_duration_seconds";
    writeln!(
        out,
        "# HELP {name} [ALPHA] Etcd request latency in seconds for each operation and object type."
    )
    .expect("write");
    writeln!(out, "# TYPE {name} histogram").expect("write");
    for op in ETCD_OPS {
        for (group, resource) in RESOURCES {
            let labels = format!("operation=\"{op}\",type=\"/registry/{group}{resource}\"");
            histogram(&mut out, &mut rng, name, &labels, ETCD_BUCKETS);
        }
    }

    let name = "rest_client_request_duration_seconds";
    writeln!(
        out,
        "# HELP {name} [ALPHA] Request latency in seconds. Broken down by verb, and host."
    )
    .expect("write");
    writeln!(out, "# TYPE {name} histogram").expect("write");
    for host in [
        "10.96.0.1:443",
        "[::1]:6443",
        "kube-apiserver.kube-system.svc:443",
    ] {
        for verb in VERBS {
            let labels = format!("host=\"{host}\",verb=\"{verb}\"");
            histogram(&mut out, &mut rng, name, &labels, REQUEST_BUCKETS);
        }
    }

    out.push_str(
        "# HELP workqueue_depth [ALPHA] Current depth of workqueue\n# TYPE workqueue_depth gauge\n",
    );
    for (_, resource) in RESOURCES {
        for suffix in ["", "_controller", "-garbage-collector", "_quota"] {
            writeln!(
                out,
                "workqueue_depth{{name=\"{resource}{suffix}\"}} {}",
                rng.next(50)
            )
            .expect("write");
        }
    }
    out.push_str("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.71234567891e+09\n");
    if om {
        out.push_str("# EOF\n");
    }
    out.into_bytes()
}

/// Parses the whole body the way the scrape loop will: every entry, touching
/// the series key, the labels and the value.
fn parse_all(body: &[u8], format: Format) -> usize {
    let mut parser = Parser::new(body, format);
    let mut samples = 0;
    while let Some(entry) = parser.next_entry().expect("benchmark payload parses") {
        if let Entry::Sample(s) = entry {
            black_box((s.series_text, s.labels.len(), s.value, s.timestamp_ms));
            samples += 1;
        }
    }
    samples
}

fn bench_parser(c: &mut Criterion) {
    let mut inputs: Vec<(String, Vec<u8>, Format)> = vec![
        (
            "generated_text_0.0.4".into(),
            control_plane_payload(Format::Prometheus),
            Format::Prometheus,
        ),
        (
            "generated_openmetrics".into(),
            control_plane_payload(Format::OpenMetrics),
            Format::OpenMetrics,
        ),
    ];
    let shared = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/payloads"
    ));
    if let Ok(dir) = std::fs::read_dir(shared) {
        let mut files: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "prom"))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let body = std::fs::read(&path).expect("read payload");
            inputs.push((format!("real_{name}"), body, Format::Prometheus));
        }
    }

    for (name, body, format) in &inputs {
        let stats = validate(body, *format).expect("benchmark payload is valid");
        println!(
            "{name}: {} bytes, {} samples, {} families",
            body.len(),
            stats.samples,
            stats.families
        );
        let mut group = c.benchmark_group("parse_bytes");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| parse_all(black_box(body), *format))
        });
        group.finish();
        let mut group = c.benchmark_group("parse_samples");
        group.throughput(Throughput::Elements(stats.samples as u64));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| parse_all(black_box(body), *format))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_parser);
criterion_main!(benches);
