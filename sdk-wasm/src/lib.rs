//! The Footfall browser SDK.
//!
//! Three layers, as in product.md §1:
//! - the core ([`platform`], [`options`], [`session`], [`engagement`], [`tracker`], [`outbox`],
//!   [`delivery`]): plain Rust that knows nothing of the browser; it takes time, storage,
//!   randomness and the network through small traits, so every rule runs in native
//!   `cargo test` with a fake clock;
//! - `browser`: the only way out of the wasm, the JavaScript host's functions (only numbers
//!   and strings cross), kept thin;
//! - `api`: the `#[wasm_bindgen]` functions the JavaScript wrapper calls (`init`, `track`, ...).
//!
//! Size: every panic message that formats a value (an index out of bounds, a slice range, a
//! `RefCell` borrow) brings `core::fmt`'s number and `Debug` code into the wasm. So the code
//! that ships uses `get` rather than indexing or slicing, `retain` or iterators rather than
//! `drain(..n)`, `try_borrow_mut`, hand-written digits (`footfall_wire::json`), and one-char
//! arrays as patterns (`split([';'])`: the single-`char` searcher has a range check).
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]
// One-character texts are pushed and matched as `&str`, not `char`: a `char` brings its UTF-8
// encoder into the SDK's wasm.
#![allow(clippy::single_char_add_str, clippy::single_char_pattern)]

extern crate alloc;

/// What `std`'s prelude gives, from `alloc`: the wasm that ships is built without `std`
/// (`--no-default-features`, as `cargo xtask build` does; tests and clippy keep the `std`
/// feature, which their dev-dependencies need), so the modules name these here.
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::string::String;
}

pub mod delivery;
pub mod engagement;
pub mod heap;
pub mod options;
pub mod outbox;
pub mod platform;
pub mod session;
pub mod tracker;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod browser;

/// The allocator of [`heap`]: size classes with free lists, a few hundred bytes of wasm.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: heap::Heap<heap::WasmMemory> = heap::Heap(core::cell::UnsafeCell::new(
    heap::Classes::new(heap::WasmMemory),
));

/// `footfall-web/<version>`, sent in every event's context.
pub const SDK_VERSION: &str = concat!("footfall-web/", env!("CARGO_PKG_VERSION"));

/// Without `std`, the wasm's panics stop it at once: no message is formatted (the host's
/// guard catches the trap). What is left of `core::fmt` is the integer formatting of
/// `alloc`'s out-of-memory message, which stable Rust cannot replace; `cargo xtask build`
/// fails if any other formatting or panic-message code reaches the wasm, then makes that
/// handler and the panic entry points trap at once and drops the messages and locations only
/// they named (`xtask/src/trim.rs`).
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
