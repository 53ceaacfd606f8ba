//! `process` collector: exact fork/exec/exit counts and an OOM kill, against the real kernel.

use std::path::PathBuf;

use super::{
    assert_loaded,
    fixtures::{MemoryLimit, TestCgroup, privileged},
    start,
};
use crate::collectors::process;

#[test]
fn exec_fork_exit_counts_are_exact() {
    if !privileged("exec_fork_exit_counts_are_exact") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&process::SPEC]);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("proc");
    const N: u32 = 20;
    // The wrapper shell joins the cgroup and execs a second shell (1 exec), which forks and
    // execs /bin/true N times (N forks, N execs, N exits) and exits itself (1 exit). The final
    // `exit` builtin keeps dash from exec'ing the last command in place of forking it.
    let script = format!(
        "exec /bin/sh -c 'i=0; while [ $i -lt {N} ]; do /bin/true; i=$((i+1)); done; exit 0'"
    );
    assert!(cg.run(&script).expect("workload").success());
    collectors.collect_now();
    let get = |name| sink.last(name, cg.path(), &[]).unwrap_or(-1.0);
    assert_eq!(
        get("crowsnest_container_processes_started_total"),
        f64::from(N)
    );
    assert_eq!(
        get("crowsnest_container_process_execs_total"),
        f64::from(N + 1)
    );
    assert_eq!(
        get("crowsnest_container_process_exits_total"),
        f64::from(N + 1)
    );
    assert_eq!(get("crowsnest_container_oom_kills_total"), 0.0);
}

#[test]
fn oom_kill_is_charged_to_the_victims_cgroup() {
    if !privileged("oom_kill_is_charged_to_the_victims_cgroup") {
        return;
    }
    let (collectors, sink, _registry) = start(&[&process::SPEC]);
    assert_loaded(&collectors);
    let cg = TestCgroup::new("oom");
    // memory.max on cgroup v2 when the memory controller is there, else a cgroup v1 memory
    // hierarchy (hybrid hosts like this one); the workload joins both.
    let limit = MemoryLimit::new(&cg, 32 << 20);
    let join: Vec<PathBuf> = limit.procs_files();
    let joins: String = join
        .iter()
        .map(|p| format!("echo $$ > {} && ", p.display()))
        .collect();
    // `tail` buffers a newline-free stream whole: it grows until the OOM killer takes it.
    let status = cg.run(&format!("{joins}head -c 512M /dev/zero | tail > /dev/null"));
    assert!(
        !status.expect("workload").success(),
        "the workload should have been killed"
    );
    collectors.collect_now();
    let kills = sink
        .last("crowsnest_container_oom_kills_total", cg.path(), &[])
        .unwrap_or(0.0);
    assert_eq!(kills, 1.0, "OOM kills charged to {}", cg.path());
    drop(limit);
}
