//! The heap the int8 model holds, counted by this test binary's own allocator: at its peak, which is what
//! a wasm module keeps (its linear memory never shrinks), while it loads the bundle and embeds the
//! benchmark's workload (`akidb-native/src/bench_sentences.json`: one sentence, then the batch of 32 in
//! its chunks of several shapes, then both again).
//!
//! The wasm build holds about what is counted here, less the packings of native kernels of other
//! layouts, plus its code and stack; `make bench-wasm` reports its linear memory after the same workload. Run alone (`--test memory`): one test, so no other thread
//! allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use akidb_core::{Bundle, Embedder};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only the byte counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            let live = LIVE.fetch_add(new_size, Relaxed) + new_size;
            PEAK.fetch_max(live, Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MB: f64 = 1e6;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / MB
}

/// Live and peak heap (MB) after each step, printed for the record (`--nocapture`).
fn step(name: &str) -> (f64, f64) {
    let (live, peak) = (mb(LIVE.load(Relaxed)), mb(PEAK.load(Relaxed)));
    println!("{name:<28} live {live:6.1} MB   peak {peak:6.1} MB");
    (live, peak)
}

#[derive(serde::Deserialize)]
struct BenchSentences {
    single: String,
    batch: Vec<String>,
}

#[test]
fn the_int8_model_keeps_int8_weights_and_packs_each_once_through_the_benchmark_workload() {
    let root = akidb_testkit::paths::workspace();
    let dir = akidb_testkit::paths::int8_bundle();
    let read = |p: &str| std::fs::read(dir.join(p)).ok();
    let sentences: BenchSentences =
        serde_json::from_slice(&std::fs::read(root.join("akidb-native/src/bench_sentences.json")).unwrap())
            .unwrap();
    let batch: Vec<&str> = sentences.batch.iter().map(String::as_str).collect();
    step("start");
    let manifest = read("manifest.json").expect("run scripts/fetch-models.sh first");
    // As in the browser: the bundle's bytes are in memory when the model loads.
    let bundle = Bundle::from_files(&manifest, read).unwrap();
    step("bundle read");
    let embedder = Embedder::new(&bundle).unwrap();
    let (loaded, _) = step("loaded");
    embedder.embed(&[&sentences.single]).unwrap();
    step("single sentence");
    embedder.embed(&batch).unwrap();
    step("batch of 32");
    for _ in 0..2 {
        embedder.embed(&[&sentences.single]).unwrap();
        embedder.embed(&batch).unwrap();
    }
    let (live, peak) = step("workload twice more");
    // The int8 layer weights stay int8 (no 42 MB f32 copy) and nothing else of that size is made at
    // load: 85 MB live after load and a 100 MB peak before they were kept lazily.
    assert!(
        loaded < 60.0,
        "{loaded:.1} MB live after load, bundle bytes (23 MB) included"
    );
    // No plan compile packs a weight that was packed for an earlier plan: the transient repack (peak
    // 46 MB over the live heap before) is gone. Natively the kernel, so the packing layout, depends on the
    // shape, so several layouts are held; wasm has one (`make bench-wasm` reports its memory).
    assert!(
        peak - live < 10.0,
        "peak {peak:.1} MB against {live:.1} MB live after the workload"
    );
}
