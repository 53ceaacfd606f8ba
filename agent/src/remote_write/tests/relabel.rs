//! write_relabel_configs with the real relabel engine (needs `Rules::compile`).

use super::receiver::{Receiver, Reply};
use super::{WAIT, config, eventually, samples, series, status, writer};
use crate::model::Labels;
use crate::relabel::{RelabelConfig, Rules};

fn rule(yaml: &str) -> RelabelConfig {
    serde_yaml::from_str(yaml).expect("relabel config")
}

#[tokio::test]
async fn write_relabel_runs_after_external_labels_and_drops_are_not_sent() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let mut cfg = config("r", rx.url(), |_| {});
    cfg.write_relabel_configs = Rules::compile(&[
        // Sees the external label: proves the order (external first, like Prometheus).
        rule("{source_labels: [cluster, series], regex: 'c1;[0-4]', target_label: low, replacement: 'yes'}"),
        rule("{source_labels: [series], regex: '9', action: drop}"),
        rule("{regex: job, action: labeldrop}"),
        // An empty replacement removes the label: never sent as an empty value.
        rule("{target_label: cluster_alias, replacement: ''}"),
    ])
    .expect("compile");
    let w = writer(&[cfg], &Labels::from_pairs([("cluster", "c1")])).await;
    let all: Vec<_> = (0..10).map(series).collect();
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || rx.delivered().len() == 9).await);
    let got = rx.delivered();
    assert!(
        got.keys().all(|(l, _)| !l.contains("series=9")
            && !l.contains("job=")
            && l.contains("cluster=c1"))
    );
    let low = got.keys().filter(|(l, _)| l.contains("low=yes")).count();
    assert_eq!(low, 5);
    for (labels, _) in got.keys() {
        let names: Vec<&str> = labels
            .split(',')
            .map(|kv| kv.split('=').next().unwrap_or(""))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "sorted by byte order");
        assert!(
            labels.split(',').all(|kv| !kv.ends_with('=')),
            "no empty values: {labels}"
        );
    }
    // Relabel drops are filtering, not loss, but accounted under their own
    // reason so that collected = sent + dropped + pending adds up.
    let st = status(&w);
    let dropped: u64 = st.samples_dropped.values().sum();
    assert_eq!(dropped, st.samples_dropped["relabel_drop"], "no other loss");
    assert_eq!(
        st.samples_collected,
        st.samples_sent + dropped + st.queue_length as u64
    );
    w.shutdown(WAIT).await;
}
