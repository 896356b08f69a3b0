//! Live and peak heap after each stage of loading a bundle and embedding at new shapes: where the
//! memory of an embedder goes, without a profiler (wasm's linear memory only grows, so the peaks here are
//! what a browser keeps).
//!
//! `cargo run --release -p akidb-core --example heap_by_stage [bundle dir]`
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting the bytes it holds.
struct Counting;
static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let c = CUR.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(c, Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CUR.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            let c = CUR.fetch_add(n - l.size(), Relaxed) + n - l.size();
            PEAK.fetch_max(c, Relaxed);
        } else {
            CUR.fetch_sub(l.size() - n, Relaxed);
        }
        System.realloc(p, l, n)
    }
}
#[global_allocator]
static A: Counting = Counting;

fn report(stage: &str) {
    println!(
        "{stage:>12}: live {:6.1} MB, peak during the stage {:6.1} MB",
        CUR.load(Relaxed) as f64 / 1e6,
        PEAK.load(Relaxed) as f64 / 1e6
    );
    PEAK.store(CUR.load(Relaxed), Relaxed);
}

fn main() {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or("models/all-MiniLM-L6-v2/int8".into()),
    );
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let bundle = akidb_core::Bundle::from_files(&manifest, |p| std::fs::read(dir.join(p)).ok()).unwrap();
    report("bundle");
    let e = akidb_core::Embedder::new(&bundle).unwrap();
    report("load");
    drop(bundle);
    report("drop bundle");
    e.embed(&["A man is eating food."]).unwrap();
    report("single");
    e.embed(&["A man is eating food."; 2]).unwrap();
    report("batch2");
    e.embed(&["A man is eating food."; 8]).unwrap();
    report("batch8");
    e.embed(&["A man is eating food and then he leaves."; 8]).unwrap();
    report("batch8 seq16");
    e.embed(&["A man is eating food."; 32]).unwrap();
    report("batch32");
}
