// The ES module build (`import { init, track } from "footfall"`). It loads the wasm on
// `init`; calls made before it is ready are queued with their time and replayed in order.
import loadWasm, * as sdk from "./footfall_sdk.js";
import { footfallHost } from "./host.js";

let ready = null;
const queue = [];
let host = null;

function guard(name, args) {
  try {
    return host.api[name].apply(null, args);
  } catch (e) {
    console.warn("footfall: internal error, call ignored", e);
  }
}

function call(name, args) {
  if (ready === "done") return guard(name, args);
  queue.push([Date.now(), name, args]);
}

/** Starts the SDK; resolves once it runs. */
export function init(options) {
  if (ready) return ready === "done" ? Promise.resolve() : ready;
  // The wasm's host (host.js), reached by the wasm as a global.
  host = globalThis.footfall_host = footfallHost(sdk);
  ready = loadWasm({ module_or_path: new URL("./footfall_sdk_bg.wasm", import.meta.url) })
    .then(() => {
      guard("init", [options]);
      ready = "done";
      for (const [at, name, args] of queue.splice(0)) {
        guard("_replayAt", [at]);
        guard(name, args);
        guard("_replayAt", [NaN]);
      }
    })
    .catch((e) => console.warn("footfall: the SDK could not load; nothing is tracked", e));
  return ready;
}

export const page = (props) => call("page", [props]);
export const track = (name, props) => call("track", [name, props]);
export const identify = (userId, traits) => call("identify", [userId, traits]);
export const setUserProperties = (props) => call("setUserProperties", [props]);
export const register = (props) => call("register", [props]);
export const unregister = (key) => call("unregister", [key]);
export const reset = () => call("reset", []);
export const optOut = () => call("optOut", []);
export const optIn = () => call("optIn", []);
export const isOptedOut = () => (ready === "done" ? guard("isOptedOut", []) : undefined);
export const flush = () => (ready === "done" ? host.flush() : Promise.resolve());
export const getAnonymousId = () => (ready === "done" ? guard("getAnonymousId", []) : undefined);
export const getSessionId = () => (ready === "done" ? guard("getSessionId", []) : undefined);
export const getUserId = () => (ready === "done" ? guard("getUserId", []) : undefined);
