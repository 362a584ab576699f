//! The wasm's only way out: the functions of the JavaScript host (`js-wrapper/src/host/`),
//! and the core's traits ([`Clock`], [`Storage`], [`Entropy`], the delivery's [`Net`]) over
//! them. Only numbers and UTF-8 strings cross; the host reads and writes cookies, storage and
//! the page, sends, and runs timers and listeners, and its answers come back through the
//! wasm's exports. Nothing here decides anything: the decisions are made in the core.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::delivery::{Later, Net};
use crate::platform::{Clock, Entropy, Storage};
use wasm_bindgen::prelude::*;

/// The JavaScript host, a global the wrapper sets before the wasm runs. None of these throws.
/// Whole numbers and flags cross as `i32` (the glue passes them as they are; a `u32` costs it
/// a `>>> 0`, a `bool` a `!== 0`).
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn now() -> f64;
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn rnd() -> u32;
    #[wasm_bindgen(js_namespace = footfall_host, js_name = warn)]
    fn host_warn(msg: &str);
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn open(which: i32, cookie_domain: &str) -> i32;
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn sset(store: i32, key: &str, value: &str);
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn sdel(store: i32, key: &str);
    /// The texts the wasm reads, one import for all (each import costs its own glue): see
    /// [`Read`].
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn text(what: i32, n: f64, s: &str) -> Text;
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn facts() -> u32;
    #[wasm_bindgen(js_namespace = footfall_host)]
    fn t0() -> f64;
    #[wasm_bindgen(js_namespace = footfall_host, js_name = post)]
    fn host_post(url: &str, body: &str);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = beacon)]
    fn host_beacon(url: &str, body: &str) -> bool;
    #[wasm_bindgen(js_namespace = footfall_host, js_name = later)]
    fn host_later(what: i32);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = flushed)]
    fn host_flushed(count: i32);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = timer)]
    fn host_timer(what: i32, ms: f64);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = listen)]
    fn host_listen(history: i32);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = lock)]
    fn host_lock(name: &str, hold: i32) -> bool;
    #[wasm_bindgen(js_namespace = footfall_host, js_name = got)]
    fn host_got(text: &str);
}

/// What [`text`] reads (`text` in `js-wrapper/src/host.js`).
#[derive(Clone, Copy)]
enum Read {
    /// The page's lines (see [`page`]).
    Page = 0,
    /// The context's lines (see [`context`]).
    Context = 1,
    /// localStorage's keys that start with `s`, one a line.
    Keys = 2,
    /// The timestamp of `n` (ms since the epoch).
    Iso = 3,
    /// The value of key `s` in the storage of handle `n` ("" when missing).
    Get = 4,
}

fn read_text(what: Read, n: f64, s: &str) -> String {
    text(what as i32, n, s).0
}

/// A string the host returns: wasm-bindgen's glue has written it into memory the wasm
/// allocated for exactly its length, so it becomes a `String` as it is. (wasm-bindgen's own
/// `String` goes through `Box<[u8]>`, whose shrinking, never needed here, costs 400 bytes.)
pub struct Text(String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl wasm_bindgen::describe::WasmDescribe for Text {
    fn describe() {
        <String as wasm_bindgen::describe::WasmDescribe>::describe()
    }
}

impl wasm_bindgen::convert::FromWasmAbi for Text {
    type Abi = wasm_bindgen::convert::WasmSlice;

    unsafe fn from_abi(js: Self::Abi) -> Self {
        // No string the host hands in reaches 2 GiB (a browser's longest string, 2^29
        // UTF-16 units, is at most 1.5 GiB of UTF-8); the mask tells the compiler so: a length
        // is then never the value a `Result<Text, _>` marks its error with, and wasm-bindgen's
        // error path for arguments (a throw, with its import) goes from the wasm.
        let (ptr, len) = (
            js.ptr.into_usize(),
            js.len.into_usize() & isize::MAX as usize,
        );
        // SAFETY: the glue allocated `len` bytes at `ptr` with the wasm's allocator and wrote
        // UTF-8 (`TextEncoder`) into all of them; ownership passes to the wasm.
        Text(unsafe { String::from_raw_parts(ptr as *mut u8, len, len) })
    }
}

/// The delivery's way out (see [`crate::delivery`]): the host's `fetch`, `sendBeacon`,
/// timers and end-of-task work; answers come back through the `_on`
/// exports.
pub struct BrowserNet;

impl Net for BrowserNet {
    fn now_ms(&self) -> i64 {
        now() as i64
    }
    fn timestamp(&self, ms: i64) -> String {
        read_text(Read::Iso, ms as f64, "")
    }
    fn online(&self) -> bool {
        online()
    }
    fn random_u16(&mut self) -> u16 {
        rnd() as u16
    }
    fn post(&mut self, url: &str, body: &str) {
        host_post(url, body);
    }
    fn beacon(&mut self, url: &str, body: &str) -> bool {
        host_beacon(url, body)
    }
    fn later(&mut self, what: Later) {
        host_later(what as i32);
    }
    fn timer(&mut self, what: Later, ms: i64) {
        host_timer(what as i32, ms.clamp(0, u32::MAX as i64) as f64);
    }
    fn flushed(&mut self, count: u32) {
        host_flushed(count as i32);
    }
    fn warn(&mut self, msg: &str) {
        host_warn(msg);
    }
}

/// Asks the host to call `_on` for each event of the page from now on: visibility, page hide
/// and show, online, user input, and with `history`, History API navigations.
pub fn listen(history: bool) {
    host_listen(history.into());
}

/// The answer to a read of the page's (`_on(30 + what)`, see `api::read`).
pub fn got(text: &str) {
    host_got(text);
}

/// One `console.warn`, prefixed by the host so site owners know where it comes from.
pub fn warn(msg: &str) {
    host_warn(msg);
}

/// `Date.now()`.
pub struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> i64 {
        now() as i64
    }
    fn timestamp(&self, ms: i64) -> String {
        read_text(Read::Iso, ms as f64, "")
    }
}

/// `crypto.getRandomValues` (`Math.random` without crypto), pooled by the host.
pub struct BrowserEntropy;

impl Entropy for BrowserEntropy {
    /// Each word's bytes, lowest first.
    fn fill(&mut self, buf: &mut [u8]) {
        let mut word = 0;
        for (i, b) in buf.iter_mut().enumerate() {
            if i % 4 == 0 {
                word = rnd();
            }
            *b = word as u8;
            word >>= 8;
        }
    }
}

/// Which storage to open (see `open` in `host/storage.js`).
#[derive(Clone, Copy)]
pub enum Want {
    /// Cookies, else localStorage, else memory.
    Cookie = 0,
    /// localStorage, else memory.
    Local = 1,
    Memory = 2,
    /// sessionStorage, else memory.
    Session = 3,
    /// localStorage or nothing.
    LocalOnly = 4,
    /// sessionStorage or nothing.
    SessionOnly = 5,
}

/// A storage the host opened: cookies (read once and written once per task, on the domain
/// found at open), localStorage, sessionStorage, or memory (which keeps the opt-out in
/// localStorage when it can).
#[derive(Clone, Copy)]
pub struct BrowserStorage(i32);

impl BrowserStorage {
    pub fn open(want: Want, cookie_domain: &str) -> Option<BrowserStorage> {
        let h = open(want as i32, cookie_domain);
        (h >= 0).then_some(BrowserStorage(h))
    }

    /// Opens one that falls back to memory: never `None`.
    pub fn open_any(want: Want, cookie_domain: &str) -> BrowserStorage {
        BrowserStorage::open(want, cookie_domain).unwrap_or(BrowserStorage(-1))
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        Some(self.text(key)).filter(|t| !t.is_empty())
    }
    fn text(&self, key: &str) -> String {
        read_text(Read::Get, self.0.into(), key)
    }
    fn set(&mut self, key: &str, value: &str) {
        sset(self.0, key, value);
    }
    fn remove(&mut self, key: &str) {
        sdel(self.0, key);
    }
}

/// The keys of localStorage that start with `prefix`, one a line.
pub fn local_keys(prefix: &str) -> String {
    read_text(Read::Keys, 0.0, prefix)
}

/// The page an event happens on: its URL, path, title and referrer, one a line (the host
/// reads the URL and title each time, the path and referrer when the URL changed).
pub fn page() -> String {
    read_text(Read::Page, 0.0, "")
}

/// Screen, viewport, language and time zone, one a line (the host reads the viewport again
/// after each `resize`).
pub fn context() -> String {
    read_text(Read::Context, 0.0, "")
}

/// What the host knows of the browser, as bits: online, hidden, Do Not Track or Global
/// Privacy Control.
fn fact(bit: u32) -> bool {
    facts() & bit != 0
}

/// `navigator.onLine`.
pub fn online() -> bool {
    fact(1)
}

/// Whether the page is hidden now.
pub fn is_hidden() -> bool {
    fact(2)
}

/// `navigator.doNotTrack == "1"` or `navigator.globalPrivacyControl`.
pub fn do_not_track() -> bool {
    fact(4)
}

/// `performance.timeOrigin`: when the page's navigation started, ms since the epoch (0 when
/// unknown).
pub fn page_load_ms() -> i64 {
    t0() as i64
}

/// Asks the Web Locks API (through the host) for lock `name` if it is free; the host calls the
/// `_record` export (kind 6 or 7) with `name` while it is held, or at once when it is not free. With
/// `hold`, a granted lock is kept for the life of the page (the browser frees it when the page
/// goes, even by a crash). False, with no call to come, when there are no Web Locks.
pub fn lock(name: &str, hold: bool) -> bool {
    host_lock(name, hold.into())
}
