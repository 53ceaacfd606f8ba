//! Counts heap allocations per `process` call on the hot paths, so "no
//! per-series allocation" is a checked property rather than a hope.
//!
//! The counting allocator is test-only and counts per thread, so tests
//! running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; we only count.
#[allow(
    unsafe_code,
    reason = "a GlobalAlloc impl is unsafe by definition; test-only"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_per_call(yaml: &str, input: &[(&str, &str)]) -> usize {
    let configs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
    let rules = Rules::compile(&configs).unwrap();
    let mut labels = Labels::from_pairs(input.iter().copied());
    // Warm up: fills the scratch buffers, the regex caches and the labels.
    rules.process(&mut labels);
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..10 {
        rules.process(&mut labels);
    }
    (ALLOCATIONS.with(Cell::get) - before) / 10
}

#[test]
fn hot_paths_do_not_allocate() {
    let series = [
        ("__name__", "http_requests_total"),
        ("code", "200"),
        ("pod", "web-1"),
    ];
    #[rustfmt::skip]
    let table: &[(&str, usize)] = &[
        ("[{action: drop, source_labels: [__name__], regex: 'go_.*|process_.*'}]", 0),
        ("[{action: keep, source_labels: [__name__, code], regex: 'http_.*;2..'}]", 0),
        ("[{source_labels: [pod], target_label: instance}]", 0),
        ("[{source_labels: [__name__], regex: '.*_total', target_label: type, replacement: counter}]", 0),
        ("[{action: hashmod, source_labels: [pod], modulus: 8, target_label: shard}]", 0),
        ("[{action: lowercase, source_labels: [pod], target_label: pod_lc}]", 0),
        ("[{action: keepequal, source_labels: [code], target_label: code}]", 0),
        ("[{action: labeldrop, regex: '__meta_.*'}]", 0),
        ("[{action: labelkeep, regex: '__name__|code|pod|shard'}]", 0),
        ("[{action: labelmap, regex: '__meta_kubernetes_pod_label_(.+)'}]", 0),
        // Group references need the regex crate's `Captures` (one small
        // allocation), as Prometheus needs FindStringSubmatchIndex.
        ("[{source_labels: [pod], regex: '(.+)-\\d+', target_label: app}]", 1),
    ];
    for (yaml, want) in table {
        assert_eq!(allocations_per_call(yaml, &series), *want, "{yaml}");
    }
}
