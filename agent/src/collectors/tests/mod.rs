//! Collectors against the real kernel, as root: workloads run in cgroups the tests create, and
//! what the collectors report is checked against ground truth (the cgroup's own `cpu.stat`,
//! exact exec counts, traffic we generate). Without root/BPF the tests print a skip notice;
//! with `CI=true` they fail instead, so CI can never skip them silently.

mod fixtures;
mod process;
mod tcp;

use std::{sync::Arc, time::Duration};

use fixtures::{RecordingSink, TestCgroup, privileged};
use prometheus_client::registry::Registry;

use super::{CollectorState, Collectors, cpu, spec::Spec};
use crate::config::collectors::{CollectorKind, CollectorsConfig};

fn start(specs: &[&'static Spec]) -> (Collectors, Arc<RecordingSink>, Registry) {
    start_with_config(specs, &CollectorsConfig::default())
}

fn start_with_config(
    specs: &[&'static Spec],
    cfg: &CollectorsConfig,
) -> (Collectors, Arc<RecordingSink>, Registry) {
    let sink = Arc::new(RecordingSink::default());
    let mut registry = Registry::default();
    let collectors = Collectors::start_with(specs, cfg, sink.clone(), &mut registry);
    (collectors, sink, registry)
}

/// ids of the cgroups in the first collector's `CPU_STATS` map.
fn cpu_map_keys(collectors: &Collectors) -> Vec<u64> {
    super::lock(&collectors.entries[0])
        .running
        .as_ref()
        .map(|r| r.cgroup_keys("CPU_STATS"))
        .unwrap_or_default()
}

fn assert_loaded(collectors: &Collectors) {
    for status in collectors.status() {
        assert_eq!(status.state, CollectorState::Loaded, "{status:?}");
    }
}

#[test]
fn cpu_seconds_match_cgroup_cpu_stat() {
    if !privileged("cpu_seconds_match_cgroup_cpu_stat") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&cpu::SPEC]);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("cpu");
    // Two shells each doing a fixed amount of work (builtins only), so the CPU they use does
    // not depend on how busy the machine is; cpu.stat counts the same on-CPU time.
    let burner = "i=0; while [ $i -lt 500000 ]; do i=$((i+1)); done";
    let status = cg
        .run(&format!("for n in 1 2; do sh -c '{burner}' & done; wait"))
        .expect("workload");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(50));
    collectors.collect_now();
    let truth = cg.cpu_usage_seconds();
    let got = sink
        .last("crowsnest_container_cpu_seconds_total", cg.path(), &[])
        .expect("no cpu series");
    eprintln!("cpu: ebpf={got:.4}s cpu.stat={truth:.4}s");
    assert!(truth > 0.3, "workload did not burn CPU: {truth}");
    assert!(
        (got - truth).abs() <= truth * 0.10,
        "ebpf {got} vs cpu.stat {truth}"
    );

    let voluntary = sink
        .last(
            "crowsnest_container_context_switches_total",
            cg.path(),
            &[("kind", "voluntary")],
        )
        .unwrap_or(0.0);
    assert!(
        voluntary >= 1.0,
        "the shell waiting for its children switches voluntarily"
    );
    let count = sink
        .last(
            "crowsnest_container_runqueue_latency_seconds_count",
            cg.path(),
            &[],
        )
        .expect("no runqueue histogram");
    assert!(count >= 1.0);
    let status = collectors.status();
    assert!(
        status[0].programs.iter().any(|p| p.run_count > 0),
        "{status:?}"
    );
}

#[test]
fn cpu_time_of_a_task_that_never_switches_is_charged_while_it_runs() {
    if !privileged("cpu_time_of_a_task_that_never_switches_is_charged_while_it_runs") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&cpu::SPEC]);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("hog");
    // A real-time busy loop: ordinary tasks cannot preempt it, so it keeps its CPU until the
    // kernel's RT throttling (by default 50 ms each second) forces a switch.
    let mut hog = cg
        .spawn("exec chrt -f 10 sh -c 'while :; do :; done'")
        .expect("hog");
    std::thread::sleep(Duration::from_millis(1500));
    // Read while it still runs: without the per-CPU clock event a lone busy task is charged
    // only when it is switched out.
    collectors.collect_now();
    let truth = cg.cpu_usage_seconds();
    let got = sink
        .last("crowsnest_container_cpu_seconds_total", cg.path(), &[])
        .unwrap_or(0.0);
    let _ = hog.kill();
    let _ = hog.wait();
    eprintln!("running hog: ebpf={got:.4}s cpu.stat={truth:.4}s");
    assert!(truth > 0.3, "the hog did not run: {truth}");
    // The clock event charges every 100 ms, so at most 0.1 s is still pending (without it,
    // everything since the last RT-throttling switch: 0.2-0.5 s here).
    assert!(
        (got - truth).abs() <= 0.12,
        "ebpf {got} vs cpu.stat {truth} while running"
    );
}

#[test]
fn runqueue_latency_matches_schedstat_run_delay() {
    if !privileged("runqueue_latency_matches_schedstat_run_delay") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&cpu::SPEC]);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("runq");
    // More busy shells than CPUs so they queue. Each loop is builtins only (no child
    // processes), and each shell prints its own schedstat run_delay (ns spent runnable but
    // waiting) when done: the kernel's ground truth for what the histogram sums.
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let burner = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; \
                  read run wait slices < /proc/$$/schedstat; echo $wait";
    let script = format!(
        "for n in $(seq {}); do sh -c '{burner}' & done; wait",
        cpus + 1
    );
    let out = cg.output(&script).expect("workload");
    assert!(out.status.success());
    collectors.collect_now();
    let truth: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<f64>().expect("run_delay"))
        .sum::<f64>()
        / 1e9;
    let name = "crowsnest_container_runqueue_latency_seconds_sum";
    let got = sink
        .last(name, cg.path(), &[])
        .expect("no runqueue histogram");
    eprintln!("runqueue: ebpf={got:.4}s schedstat run_delay={truth:.4}s");
    assert!(truth > 0.05, "the burners did not queue: {truth}");
    // The histogram also holds the parent shell's and seq's (small) waits.
    assert!(
        got >= truth * 0.9 && got <= truth * 1.2,
        "ebpf {got} vs run_delay {truth}"
    );
}

#[test]
fn series_go_stale_after_cgroup_removal() {
    if !privileged("series_go_stale_after_cgroup_removal") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&cpu::SPEC]);
    let cg = TestCgroup::new("stale");
    let path = cg.path().to_owned();
    let id = cg.id();
    assert!(cg.run("true").expect("workload").success());
    collectors.collect_now();
    assert!(
        sink.last("crowsnest_container_cpu_seconds_total", &path, &[])
            .is_some()
    );
    assert!(cpu_map_keys(&collectors).contains(&id));
    drop(cg);
    collectors.collect_now();
    let value = sink
        .last("crowsnest_container_cpu_seconds_total", &path, &[])
        .expect("series");
    assert!(
        crate::model::is_stale_nan(value),
        "expected a stale marker, got {value}"
    );
    // The kernel entry of the removed cgroup is gone too (churn must not fill the map).
    assert!(!cpu_map_keys(&collectors).contains(&id));
}

#[test]
fn a_full_map_counts_drops() {
    if !privileged("a_full_map_counts_drops") {
        return;
    }
    // Room for one cgroup: the first busy cgroup on the host takes it, ours is dropped.
    let cfg = CollectorsConfig {
        max_cgroups: 1,
        ..CollectorsConfig::default()
    };
    let (collectors, _sink, registry) = start_with_config(&[&cpu::SPEC], &cfg);
    assert_loaded(&collectors);
    let a = TestCgroup::new("full-a");
    let b = TestCgroup::new("full-b");
    assert!(a.run("true").expect("workload").success());
    assert!(b.run("true").expect("workload").success());
    collectors.collect_now();
    assert!(cpu_map_keys(&collectors).len() <= 1);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let drops = text
        .lines()
        .find(|l| {
            l.starts_with("crowsnest_ebpf_map_full_drops_total{")
                && l.contains("collector=\"cpu\"")
                && l.contains("map=\"stats\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("drop counter exported");
    assert!(drops > 0.0, "{text}");
}

#[test]
fn a_broken_collector_leaves_the_others_running() {
    if !privileged("a_broken_collector_leaves_the_others_running") {
        return;
    }
    // The cpu object with its first program pointed at a tracepoint that does not exist,
    // registered under another name.
    let broken: &'static Spec = Box::leak(Box::new(Spec {
        kind: CollectorKind::Tcp,
        programs: Box::leak(Box::new([super::spec::ProgramSpec {
            name: "sched_switch",
            attach: super::spec::Attach::BtfTracepoint("crowsnest_no_such_tracepoint"),
            optional: false,
        }])),
        ..cpu::SPEC
    }));
    let (collectors, sink, registry) = start(&[broken, &cpu::SPEC]);
    let status = collectors.status();
    assert_eq!(status[0].state, CollectorState::Failed);
    assert!(
        status[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("crowsnest_no_such_tracepoint")),
        "{status:?}"
    );
    assert_eq!(status[1].state, CollectorState::Loaded, "{status:?}");
    let cg = TestCgroup::new("survivor");
    assert!(cg.run("true").expect("workload").success());
    collectors.collect_now();
    assert!(
        sink.last("crowsnest_container_cpu_seconds_total", cg.path(), &[])
            .is_some()
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("crowsnest_collector_up{collector=\"tcp\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("crowsnest_collector_up{collector=\"cpu\"} 1"),
        "{text}"
    );
}

#[test]
fn an_agent_built_without_ebpf_reports_every_collector_failed() {
    // No privilege needed: nothing reaches the kernel.
    let unbuilt: &'static Spec = Box::leak(Box::new(Spec {
        object: &[],
        ..cpu::SPEC
    }));
    let (collectors, sink, registry) = start(&[unbuilt]);
    let status = collectors.status();
    assert_eq!(status[0].state, CollectorState::Failed);
    assert_eq!(
        status[0].reason.as_deref(),
        Some("agent built without eBPF programs")
    );
    collectors.collect_now();
    assert!(
        sink.last("crowsnest_container_cpu_seconds_total", "/", &[])
            .is_none()
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("crowsnest_collector_up{collector=\"cpu\"} 0"),
        "{text}"
    );
    let json = serde_json::to_value(&status).expect("status serializes");
    assert_eq!(json[0]["state"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tasks_deliver_samples_every_interval() {
    if !privileged("read_tasks_deliver_samples_every_interval") {
        return;
    }
    let cfg = CollectorsConfig {
        interval: Duration::from_millis(200),
        ..CollectorsConfig::default()
    };
    // Inside a runtime, start() spawns the read tasks itself: no collect_now here.
    let (collectors, sink, _registry) = start_with_config(&[&cpu::SPEC], &cfg);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("tick");
    assert!(cg.run("true").expect("workload").success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sink
        .last("crowsnest_container_cpu_seconds_total", cg.path(), &[])
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no samples from the read task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(collectors);
}

#[test]
fn a_failing_optional_program_leaves_its_collector_running() {
    if !privileged("a_failing_optional_program_leaves_its_collector_running") {
        return;
    }
    // The cpu programs with sched_wakeup made optional and pointed at a missing tracepoint.
    let mut programs = cpu::PROGRAMS.to_vec();
    for program in &mut programs {
        if program.name == "sched_wakeup" {
            program.attach = super::spec::Attach::BtfTracepoint("crowsnest_no_such_tracepoint");
            program.optional = true;
        }
    }
    let spec: &'static Spec = Box::leak(Box::new(Spec {
        programs: Box::leak(programs.into_boxed_slice()),
        ..cpu::SPEC
    }));
    let (collectors, sink, _registry) = start(&[spec]);
    let status = collectors.status();
    assert_eq!(status[0].state, CollectorState::Loaded, "{status:?}");
    let failed: Vec<_> = status[0]
        .programs
        .iter()
        .filter(|p| p.state == CollectorState::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{status:?}");
    assert!(
        failed[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("crowsnest_no_such_tracepoint")),
        "{status:?}"
    );
    let cg = TestCgroup::new("optional");
    assert!(cg.run("true").expect("workload").success());
    collectors.collect_now();
    assert!(
        sink.last("crowsnest_container_cpu_seconds_total", cg.path(), &[])
            .is_some()
    );
}
