//! The Footfall browser SDK.
//!
//! Three layers, as in product.md §1:
//! - the core ([`platform`], [`options`], [`session`], [`engagement`], [`tracker`], [`outbox`]): plain Rust that knows
//!   nothing of the browser; it takes time, storage and randomness through small traits, so every
//!   rule runs in native `cargo test` with a fake clock;
//! - `browser`: the only way out of the wasm, the JavaScript host's functions (only numbers
//!   and strings cross), kept thin;
//! - `api`: the `#[wasm_bindgen]` functions the JavaScript wrapper calls (`init`, `track`, ...).
//!
//! Size: every panic message that formats a value (an index out of bounds, a slice range, a
//! `RefCell` borrow) brings `core::fmt`'s number and `Debug` code into the wasm. So the code
//! that ships uses `get` rather than indexing or slicing, `retain` or iterators rather than
//! `drain(..n)`, `try_borrow_mut`, hand-written digits (`footfall_wire::json`), and one-char
//! arrays as patterns (`split([';'])`: the single-`char` searcher has a range check).

pub mod engagement;
pub mod options;
pub mod outbox;
pub mod platform;
pub mod session;
pub mod tracker;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod browser;

/// Talc instead of the standard library's dlmalloc: the same boundary-tagged, binned design
/// (freed memory is reused, which a page open for hours needs), in a few kilobytes less wasm.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// `footfall-web/<version>`, sent in every event's context.
pub const SDK_VERSION: &str = concat!("footfall-web/", env!("CARGO_PKG_VERSION"));
