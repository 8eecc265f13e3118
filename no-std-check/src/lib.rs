//! A `#![no_std]` crate that links skiff-core and defines its own panic handler.
//!
//! If anything in skiff-core's dependency graph pulled in `std`, this crate would fail to
//! compile with a duplicate `panic_impl` lang item. CI builds it; nothing else uses it.
#![no_std]

extern crate alloc;

use core::panic::PanicInfo;

/// Touches the core's public API so the dependency is really linked.
pub fn touch() -> usize {
    let term = skiff_core::Term(1);
    let index = skiff_core::Index(2);
    (term.0 + index.0) as usize
}

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}
