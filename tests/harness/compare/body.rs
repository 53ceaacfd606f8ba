//! The synthetic exposition: control-plane-shaped families (apiserver request counters and
//! latency histograms, etcd latency histograms, workqueues, process metrics) whose values
//! move every render, in text format 0.0.4.

use std::fmt::Write as _;

use bytes::Bytes;

/// Every synthetic family starts with this, so the backend can count exactly the samples
/// scraped from the exporter and nothing an agent adds (`up`, `scrape_*`).
pub const FAMILY_PREFIX: &str = "synth_";

/// One rendered body and how many samples it holds.
#[derive(Debug, Clone)]
pub struct Body {
    /// The exposition text.
    pub bytes: Bytes,
    /// Sample lines in it.
    pub samples: u64,
}

const RESOURCES: &[(&str, &str)] = &[
    ("pods", ""),
    ("nodes", ""),
    ("services", ""),
    ("endpoints", ""),
    ("configmaps", ""),
    ("secrets", ""),
    ("events", ""),
    ("namespaces", ""),
    ("serviceaccounts", ""),
    ("persistentvolumeclaims", ""),
    ("deployments", "apps"),
    ("replicasets", "apps"),
    ("daemonsets", "apps"),
    ("statefulsets", "apps"),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
    ("leases", "coordination.k8s.io"),
    ("endpointslices", "discovery.k8s.io"),
    ("ingresses", "networking.k8s.io"),
    ("networkpolicies", "networking.k8s.io"),
    ("clusterroles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("customresourcedefinitions", "apiextensions.k8s.io"),
    (
        "validatingwebhookconfigurations",
        "admissionregistration.k8s.io",
    ),
    ("horizontalpodautoscalers", "autoscaling"),
    ("priorityclasses", "scheduling.k8s.io"),
    ("storageclasses", "storage.k8s.io"),
    ("csinodes", "storage.k8s.io"),
    ("flowschemas", "flowcontrol.apiserver.k8s.io"),
    ("certificatesigningrequests", "certificates.k8s.io"),
];
const VERBS: &[&str] = &["GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"];
const SCOPES: &[&str] = &["resource", "namespace", "cluster"];
const CODES: &[&str] = &["200", "201", "404", "409", "500"];
const ETCD_OPERATIONS: &[&str] = &["get", "list", "create", "update", "delete", "listWithCount"];
const WORKQUEUES: &[&str] = &[
    "DynamicCIDRs",
    "ClusterRoleAggregator",
    "endpoint_slice",
    "deployment",
    "replicaset",
    "garbage_collector_attempt_to_delete",
    "resource_quota_controller_resource_changes",
    "service",
];
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
];
const ETCD_BUCKETS: &[f64] = &[0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 3.0];

/// What one series line's value follows.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// Grows by up to `step` per render.
    Counter { value: f64, step: u32 },
    /// Wanders around `base`.
    Gauge { base: f64, value: f64 },
    /// Bucket `bucket` of histogram `histogram` (the last index is `+Inf`).
    Bucket { histogram: usize, bucket: usize },
    /// `_sum` of histogram `histogram`.
    Sum { histogram: usize },
    /// `_count` of histogram `histogram`.
    Count { histogram: usize },
}

/// A histogram's cumulative state.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Cumulative counts per bucket, `+Inf` last.
    cumulative: Vec<u64>,
    sum: f64,
}

/// One family: its header lines and its series, rendered together as the format requires.
#[derive(Debug, Clone)]
struct Family {
    header: String,
    /// `name{labels} ` (with the trailing space) and the value it follows.
    series: Vec<(String, Value)>,
}

/// A target's exposition with exactly `series` sample lines; [`Exposition::render`] moves
/// every value and renders a new body.
#[derive(Debug)]
pub struct Exposition {
    families: Vec<Family>,
    histograms: Vec<Histogram>,
    rng: fastrand::Rng,
    samples: u64,
}

impl Exposition {
    /// Builds the families for `series` sample lines (any count, small ones mostly counters).
    pub fn new(series: usize) -> Self {
        let mut builder = Builder {
            families: Vec::new(),
            histograms: Vec::new(),
            rng: fastrand::Rng::with_seed(0x5eed),
        };
        let process = series.min(4);
        let rest = series - process;
        let request_histograms = rest * 40 / 100 / (REQUEST_BUCKETS.len() + 3);
        let etcd_histograms = rest * 15 / 100 / (ETCD_BUCKETS.len() + 3);
        let workqueues = rest * 10 / 100 / 2;
        let counters = rest
            - request_histograms * (REQUEST_BUCKETS.len() + 3)
            - etcd_histograms * (ETCD_BUCKETS.len() + 3)
            - workqueues * 2;
        builder.process(process);
        builder.request_counters(counters);
        builder.request_histograms(request_histograms);
        builder.etcd_histograms(etcd_histograms);
        builder.workqueues(workqueues);
        Self {
            families: builder.families,
            histograms: builder.histograms,
            rng: builder.rng,
            samples: series as u64,
        }
    }

    /// Sample lines per body.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Advances every value (counters and histograms only grow) and renders the body.
    pub fn render(&mut self) -> Body {
        for histogram in &mut self.histograms {
            let observations = self.rng.u32(0..20);
            for _ in 0..observations {
                // Mostly fast requests with a long tail, like real API latencies.
                let latency = -0.08 * (1.0 - self.rng.f64()).ln();
                let bucket = histogram
                    .bounds
                    .iter()
                    .position(|bound| latency <= *bound)
                    .unwrap_or(histogram.bounds.len());
                for count in &mut histogram.cumulative[bucket..] {
                    *count += 1;
                }
                histogram.sum += latency;
            }
        }
        let mut text = String::with_capacity(self.estimated_len());
        for family in &mut self.families {
            text.push_str(&family.header);
            for (prefix, value) in &mut family.series {
                text.push_str(prefix);
                let number = match value {
                    Value::Counter { value, step } => {
                        *value += f64::from(self.rng.u32(0..=*step));
                        *value
                    }
                    Value::Gauge { base, value } => {
                        *value = (*base * (0.9 + 0.2 * self.rng.f64())).round();
                        *value
                    }
                    Value::Bucket { histogram, bucket } => {
                        count_as_f64(self.histograms[*histogram].cumulative[*bucket])
                    }
                    Value::Sum { histogram } => self.histograms[*histogram].sum,
                    Value::Count { histogram } => {
                        let cumulative = &self.histograms[*histogram].cumulative;
                        count_as_f64(cumulative.last().copied().unwrap_or(0))
                    }
                };
                let _ = writeln!(text, "{number}");
            }
        }
        Body {
            bytes: Bytes::from(text),
            samples: self.samples,
        }
    }

    fn estimated_len(&self) -> usize {
        self.families
            .iter()
            .map(|family| {
                family.header.len()
                    + family
                        .series
                        .iter()
                        .map(|(prefix, _)| prefix.len() + 24)
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Counts stay far below 2^53, so the conversion is exact.
#[allow(clippy::cast_precision_loss, reason = "counts stay below 2^53")]
fn count_as_f64(count: u64) -> f64 {
    count as f64
}

/// Label values for the `index`-th combination of `lists` (mixed radix), plus the number of
/// times the combinations wrapped around (used as an API `version`, so series stay unique).
fn combination<'a>(index: usize, lists: &[&[&'a str]]) -> (Vec<&'a str>, usize) {
    let mut rest = index;
    let mut values = Vec::with_capacity(lists.len());
    for list in lists {
        values.push(list[rest % list.len()]);
        rest /= list.len();
    }
    (values, rest)
}

struct Builder {
    families: Vec<Family>,
    histograms: Vec<Histogram>,
    rng: fastrand::Rng,
}

impl Builder {
    fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Family {
        self.families.push(Family {
            header: format!(
                "# HELP {FAMILY_PREFIX}{name} {help}\n# TYPE {FAMILY_PREFIX}{name} {kind}\n"
            ),
            series: Vec::new(),
        });
        let last = self.families.len() - 1;
        &mut self.families[last]
    }

    fn process(&mut self, count: usize) {
        let all = [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
            ),
            (
                "go_goroutines",
                "gauge",
                "Number of goroutines that currently exist.",
            ),
        ];
        let bases = [0.0, 412_000_000.0, 180.0, 1_450.0];
        for ((name, kind, help), base) in all.into_iter().zip(bases).take(count) {
            let value = if kind == "counter" {
                Value::Counter {
                    value: 1_200.0,
                    step: 1,
                }
            } else {
                Value::Gauge { base, value: base }
            };
            let prefix = format!("{FAMILY_PREFIX}{name} ");
            self.family(name, kind, help).series.push((prefix, value));
        }
    }

    fn request_counters(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let resources: Vec<&str> = RESOURCES.iter().map(|(name, _)| *name).collect();
        let family = self.family(
            "apiserver_request_total",
            "counter",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        );
        for index in 0..count {
            let (values, wraps) = combination(index, &[CODES, VERBS, SCOPES, &resources]);
            let (code, verb, scope, resource) = (values[0], values[1], values[2], values[3]);
            let group = group_of(resource);
            let prefix = format!(
                "{FAMILY_PREFIX}apiserver_request_total{{code=\"{code}\",component=\"apiserver\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v{}\"}} ",
                wraps + 1
            );
            family.series.push((
                prefix,
                Value::Counter {
                    value: f64::from(u32::try_from(index % 1000).unwrap_or(0)) * 37.0,
                    step: 25,
                },
            ));
        }
    }

    fn request_histograms(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let resources: Vec<&str> = RESOURCES.iter().map(|(name, _)| *name).collect();
        let labels: Vec<String> = (0..count)
            .map(|index| {
                let (values, wraps) = combination(index, &[VERBS, SCOPES, &resources]);
                let (verb, scope, resource) = (values[0], values[1], values[2]);
                format!(
                    "component=\"apiserver\",dry_run=\"\",group=\"{}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"\",verb=\"{verb}\",version=\"v{}\"",
                    group_of(resource),
                    wraps + 1
                )
            })
            .collect();
        self.histogram_family(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            REQUEST_BUCKETS,
            &labels,
        );
    }

    fn etcd_histograms(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let types: Vec<String> = RESOURCES
            .iter()
            .map(|(resource, group)| {
                if group.is_empty() {
                    format!("/registry/{resource}")
                } else {
                    format!("/registry/{group}/{resource}")
                }
            })
            .collect();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let labels: Vec<String> = (0..count)
            .map(|index| {
                let (values, wraps) = combination(index, &[ETCD_OPERATIONS, &types]);
                format!(
                    "operation=\"{}\",type=\"{}{}\"",
                    values[0],
                    values[1],
                    if wraps == 0 {
                        String::new()
                    } else {
                        format!("-{wraps}")
                    }
                )
            })
            .collect();
        self.histogram_family(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type.",
            ETCD_BUCKETS,
            &labels,
        );
    }

    fn histogram_family(
        &mut self,
        name: &str,
        help: &str,
        bounds: &'static [f64],
        labels: &[String],
    ) {
        let first = self.histograms.len();
        self.histograms.extend(labels.iter().map(|_| Histogram {
            bounds,
            cumulative: vec![0; bounds.len() + 1],
            sum: 0.0,
        }));
        let family = self.family(name, "histogram", help);
        for (offset, labels) in labels.iter().enumerate() {
            let histogram = first + offset;
            let les = bounds
                .iter()
                .map(ToString::to_string)
                .chain(std::iter::once("+Inf".to_owned()));
            for (bucket, le) in les.enumerate() {
                family.series.push((
                    format!("{FAMILY_PREFIX}{name}_bucket{{{labels},le=\"{le}\"}} "),
                    Value::Bucket { histogram, bucket },
                ));
            }
            family.series.push((
                format!("{FAMILY_PREFIX}{name}_sum{{{labels}}} "),
                Value::Sum { histogram },
            ));
            family.series.push((
                format!("{FAMILY_PREFIX}{name}_count{{{labels}}} "),
                Value::Count { histogram },
            ));
        }
    }

    fn workqueues(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let name_of = |index: usize| {
            let (values, wraps) = combination(index, &[WORKQUEUES]);
            if wraps == 0 {
                values[0].to_owned()
            } else {
                format!("{}_{wraps}", values[0])
            }
        };
        let depth = (0..count)
            .map(|index| {
                let base = f64::from(u32::try_from(index % 50).unwrap_or(0));
                (
                    format!(
                        "{FAMILY_PREFIX}workqueue_depth{{name=\"{}\"}} ",
                        name_of(index)
                    ),
                    Value::Gauge { base, value: base },
                )
            })
            .collect();
        self.family("workqueue_depth", "gauge", "Current depth of workqueue")
            .series = depth;
        let adds = (0..count)
            .map(|index| {
                (
                    format!(
                        "{FAMILY_PREFIX}workqueue_adds_total{{name=\"{}\"}} ",
                        name_of(index)
                    ),
                    Value::Counter {
                        value: 0.0,
                        step: 40,
                    },
                )
            })
            .collect();
        self.family(
            "workqueue_adds_total",
            "counter",
            "Total number of adds handled by workqueue",
        )
        .series = adds;
    }
}

fn group_of(resource: &str) -> &'static str {
    RESOURCES
        .iter()
        .find(|(name, _)| *name == resource)
        .map_or("", |(_, group)| group)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// `name{labels}` -> value, and the `# TYPE` names in order.
    fn parse(body: &Body) -> (HashMap<String, f64>, Vec<String>) {
        let text = std::str::from_utf8(&body.bytes).expect("UTF-8");
        let mut values = HashMap::new();
        let mut types = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                types.push(rest.split(' ').next().expect("name").to_owned());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("value");
                let previous = values.insert(series.to_owned(), value.parse().expect("number"));
                assert!(previous.is_none(), "duplicate series {series}");
            }
        }
        (values, types)
    }

    #[test]
    fn bodies_hold_exactly_the_requested_unique_series() {
        for series in [0, 1, 3, 200, 2_000, 5_000, 20_000] {
            let mut exposition = Exposition::new(series);
            let body = exposition.render();
            let (values, types) = parse(&body);
            assert_eq!(values.len(), series, "{series}");
            assert_eq!(body.samples, series as u64);
            assert!(values.keys().all(|name| name.starts_with(FAMILY_PREFIX)));
            let unique: HashSet<&String> = types.iter().collect();
            assert_eq!(unique.len(), types.len(), "each family is one group");
        }
    }

    #[test]
    fn counters_and_buckets_never_decrease_and_gauges_move() {
        let mut exposition = Exposition::new(2_000);
        let (first, _) = parse(&exposition.render());
        let mut last = first.clone();
        for _ in 0..5 {
            let (next, _) = parse(&exposition.render());
            for (series, value) in &next {
                let growing = series.contains("_total")
                    || series.contains("_bucket")
                    || series.contains("_count")
                    || series.contains("_sum");
                if growing {
                    assert!(*value >= last[series], "{series} went down");
                }
            }
            last = next;
        }
        let changed = |part: &str| {
            first
                .iter()
                .any(|(series, value)| series.contains(part) && last[series] != *value)
        };
        assert!(changed("apiserver_request_total"));
        assert!(changed("_bucket"));
        assert!(changed("workqueue_depth"));
        let inf_equals_count = last
            .iter()
            .filter(|(s, _)| s.ends_with("le=\"+Inf\"}"))
            .all(|(series, value)| {
                let count = series
                    .replace("_bucket{", "_count{")
                    .replace(",le=\"+Inf\"}", "}");
                last[&count] == *value
            });
        assert!(inf_equals_count);
    }
}
