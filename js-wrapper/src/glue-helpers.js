// wasm-bindgen's helpers, shorter, for the script tag only: the build (`cargo xtask build`)
// keeps the glue's export wrappers and import object (the boundary, as wasm-bindgen wrote
// them) and puts this file in place of the helpers after them. Same names and the same work,
// without what the script tag never reaches: the asynchronous loader, `initSync`'s other
// argument forms (an object, a compiled module), `passStringToWasm0` without `realloc`, the
// fallback for a `TextEncoder` without `encodeInto` (every browser with WebAssembly and the
// rest of the SDK's needs has it), the decoder's renewal after 2 GB decoded (a Safari limit
// no page of events reaches) and the unsigned reading of addresses (`>>> 0`) past 2 GiB of
// memory, which the SDK's stays far below.
// The npm package keeps wasm-bindgen's glue as it is.
let wasm;
let WASM_VECTOR_LEN = 0;
const cachedTextEncoder = new TextEncoder();
const cachedTextDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

// A byte view of the wasm's memory, made for each use (as the DataView below): one kept would
// have to be made again once memory grows and detaches its buffer.
function getUint8ArrayMemory0() {
  return new Uint8Array(wasm.memory.buffer);
}
// A DataView of it, made for each use: the glue's one use is the `text` import's two writes.
function getDataViewMemory0() {
  return new DataView(wasm.memory.buffer);
}

function getStringFromWasm0(ptr, len) {
  return cachedTextDecoder.decode(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}

function isLikeNone(x) {
  return x == null;
}

// `arg` as UTF-8 in the wasm's memory: encoded into as many bytes as it has characters, which
// holds it whole when it is ASCII (as it mostly is); otherwise encoded again into room for
// three bytes a character, then shrunk to what was written.
function passStringToWasm0(arg, malloc, realloc) {
  let len = arg.length;
  let ptr = malloc(len, 1);
  let done = cachedTextEncoder.encodeInto(arg, getUint8ArrayMemory0().subarray(ptr, ptr + len));
  if (done.read < len) {
    ptr = realloc(ptr, len, len * 3, 1);
    done = cachedTextEncoder.encodeInto(arg, getUint8ArrayMemory0().subarray(ptr, ptr + len * 3));
    ptr = realloc(ptr, len * 3, done.written, 1);
  }
  WASM_VECTOR_LEN = done.written;
  return ptr;
}

// The wasm's host (`footfallHost`), which the glue's imports call as `footfall_host`: here a
// variable of the bundle, which esbuild shortens (the npm package's glue reads a global).
let footfall_host;

// Compiles the wasm from its bytes (the script tag's only form), with its host. Nothing to
// start: wasm-bindgen's start function only filled the externref table, which the build takes
// out of the script tag's wasm (`without_unread_exports` in xtask/src/trim.rs).
function initSync(bytes, host) {
  footfall_host = host;
  wasm = new WebAssembly.Instance(new WebAssembly.Module(bytes), __wbg_get_imports()).exports;
}

export { initSync };
