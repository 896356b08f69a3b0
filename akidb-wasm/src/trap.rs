//! What a trap was. On wasm32 a Rust panic and a failed allocation both end in `unreachable`, which the
//! engine reports as a bare `RuntimeError`; the JS loader asks these two records afterwards so that its
//! error can say which it was (`util.js`'s `explainTrap`): the size of the allocation the allocator could
//! not get (memory.grow refused) or the panic's message. Neither record needs the allocator to be read.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A global allocator that forwards to `inner` and remembers the size of the last allocation `inner`
/// refused (null returned), until [`RecordingAllocator::failed_allocation`] reads it.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout, System};
/// use akidb_wasm::trap::RecordingAllocator;
///
/// static ALLOCATOR: RecordingAllocator<System> = RecordingAllocator::new(System);
/// let layout = Layout::from_size_align(64, 8).unwrap();
/// let p = unsafe { ALLOCATOR.alloc(layout) };
/// assert!(!p.is_null());
/// unsafe { ALLOCATOR.dealloc(p, layout) };
/// assert_eq!(ALLOCATOR.failed_allocation(), None);
/// ```
pub struct RecordingAllocator<A> {
    inner: A,
    /// Bytes of the last refused request; 0 for none.
    failed: AtomicUsize,
}

impl<A> RecordingAllocator<A> {
    pub const fn new(inner: A) -> Self {
        Self {
            inner,
            failed: AtomicUsize::new(0),
        }
    }

    /// The size in bytes of the last allocation the inner allocator refused, if any.
    pub fn failed_allocation(&self) -> Option<usize> {
        match self.failed.load(Ordering::Relaxed) {
            0 => None,
            bytes => Some(bytes),
        }
    }

    fn record(&self, p: *mut u8, bytes: usize) -> *mut u8 {
        if p.is_null() {
            // max(1): a refused zero-size request (never made by std) still reads as a failure.
            self.failed.store(bytes.max(1), Ordering::Relaxed);
        }
        p
    }
}

// SAFETY: every call is forwarded unchanged to `inner`, a GlobalAlloc; only the result is looked at.
unsafe impl<A: GlobalAlloc> GlobalAlloc for RecordingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.record(unsafe { self.inner.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.record(unsafe { self.inner.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.record(unsafe { self.inner.realloc(ptr, layout, new_size) }, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

/// The last panic's message and place, as the panic hook saw it.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// The panic hook the module installs at start: the message goes to the console (`console.error`, as
/// console_error_panic_hook does) and is kept for [`last_panic`].
#[cfg(target_arch = "wasm32")]
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        record_panic(info.to_string());
    }));
}

// Natively only the tests call it (the hook is wasm32's).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn record_panic(message: String) {
    // try_lock: a panic while the record is held (it never is for long) must not block the hook.
    if let Ok(mut last) = LAST_PANIC.try_lock() {
        *last = Some(message);
    }
}

/// The last panic's message and place, if the core has panicked.
pub fn last_panic() -> Option<String> {
    LAST_PANIC.try_lock().ok().and_then(|last| last.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// System's allocator, refusing every request above `limit` bytes (as dlmalloc does when memory.grow
    /// is refused).
    struct Refusing {
        limit: usize,
    }

    unsafe impl GlobalAlloc for Refusing {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.size() > self.limit {
                std::ptr::null_mut()
            } else {
                unsafe { System.alloc(layout) }
            }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.size() > self.limit {
                std::ptr::null_mut()
            } else {
                unsafe { System.alloc_zeroed(layout) }
            }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if new_size > self.limit {
                std::ptr::null_mut()
            } else {
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[test]
    fn a_refused_allocation_is_recorded_with_its_size_and_a_granted_one_is_not() {
        let allocator = RecordingAllocator::new(Refusing { limit: 1 << 20 });
        let small = Layout::from_size_align(4096, 16).unwrap();
        let p = unsafe { allocator.alloc(small) };
        assert!(!p.is_null());
        assert_eq!(allocator.failed_allocation(), None);

        let grown = unsafe { allocator.realloc(p, small, 3 << 20) };
        assert!(grown.is_null(), "the inner allocator refuses 3 MiB");
        assert_eq!(allocator.failed_allocation(), Some(3 << 20));
        unsafe { allocator.dealloc(p, small) };

        let big = Layout::from_size_align(5 << 20, 16).unwrap();
        assert!(unsafe { allocator.alloc_zeroed(big) }.is_null());
        assert_eq!(
            allocator.failed_allocation(),
            Some(5 << 20),
            "the last refusal is the one kept"
        );
    }

    #[test]
    fn the_panic_record_keeps_the_last_message() {
        record_panic("panicked at src/a.rs:1:1:\nfirst".into());
        record_panic("panicked at src/b.rs:2:2:\nsecond".into());
        assert_eq!(last_panic().as_deref(), Some("panicked at src/b.rs:2:2:\nsecond"));
    }
}
