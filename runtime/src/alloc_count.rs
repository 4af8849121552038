//! Counts heap allocations made by the control thread while it is inside a tick.
//!
//! A binary or test installs [`CountingAllocator`] as its `#[global_allocator]`; the loop
//! marks each tick with [`TickScope`]. Only allocations on a thread inside a tick are
//! counted, so background threads do not disturb the figure. Without the allocator installed,
//! [`is_installed`] is false and no count should be reported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static TICK_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_TICK: Cell<bool> = const { Cell::new(false) };
    static THREAD_TICK_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator plus a counter of allocations made inside ticks.
pub struct CountingAllocator;

impl CountingAllocator {
    #[inline]
    fn note(&self) {
        INSTALLED.store(true, Ordering::Relaxed);
        if IN_TICK.try_with(Cell::get).unwrap_or(false) {
            TICK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            let _ = THREAD_TICK_ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only atomics and a
// const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Whether [`CountingAllocator`] is this process's global allocator (true once it has seen
/// an allocation, which happens before `main`).
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Allocations made inside ticks so far, on all threads.
pub fn tick_allocations() -> u64 {
    TICK_ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations made inside ticks so far on the calling thread only: what a test that runs a
/// loop on its own thread reads, undisturbed by loops other tests run beside it.
pub fn this_thread_tick_allocations() -> u64 {
    THREAD_TICK_ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Marks the current thread as inside a tick until dropped.
pub struct TickScope(());

impl TickScope {
    #[inline]
    pub fn enter() -> Self {
        let _ = IN_TICK.try_with(|t| t.set(true));
        Self(())
    }
}

impl Drop for TickScope {
    #[inline]
    fn drop(&mut self) {
        let _ = IN_TICK.try_with(|t| t.set(false));
    }
}
