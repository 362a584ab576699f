//! `cargo xtask`: Footfall's one entry point for setting up, building, running and testing.
//!
//! - `cargo xtask demo`  — install what is missing, build everything, start the collector with
//!   the demo shop on SQLite under `./data`, print the demo page's and the API's URLs.
//! - `cargo xtask test`  — install what is missing, then fmt check, clippy (warnings denied),
//!   native tests, wasm tests, the SDK build with its size budget, the Chromium tests and the
//!   cross-engine suite in Chromium, Firefox and WebKit, and beside those two the ClickHouse
//!   suites again on current ClickHouse (chDB).
//! - `cargo xtask build` / `setup` / `size` — the steps on their own.

mod guard;
mod setup;
mod size;
mod trim;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    std::env::set_current_dir(&root).expect("cd to the workspace root");
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::all(&root, true),
        Some("build") => setup::all(&root, false).and_then(|_| build(&root)),
        Some("size") => size::report(&root, false).map(|_| ()),
        Some("demo") => {
            let t = Instant::now();
            setup::all(&root, false)
                .and_then(|_| build(&root))
                .and_then(|_| dist(&root))
                .and_then(|_| demo(&root, t, &args[1..]))
        }
        Some("dist") => setup::all(&root, false)
            .and_then(|_| build(&root))
            .and_then(|_| dist(&root)),
        Some("test") => test(&root),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <demo|test|build|setup|size>
  demo   build everything and start the collector with the demo site (SQLite under ./data)
  test   run every check and test: fmt, clippy, native, wasm, end-to-end in Chromium, Firefox and WebKit
  build  build the SDK (wasm + JS) and the collector
  dist   the release binary and target/dist/footfall-collector-VERSION-ARCH-linux.tar.gz
  setup  install what is missing (wasm target, wasm-bindgen CLI, binaryen, Chromium, Firefox, WebKitGTK, ClickHouse, npm packages)
  size   print the SDK's size report (raw, gzip, brotli)";

/// The workspace of the checkout `cargo xtask` runs in. `cargo run` names the package's folder
/// at run time; the folder baked in at compile time may be another clone's when the target dir
/// is shared (CI's clones reuse one cache), so it is only the fallback.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Prints a step's name, runs it, prints how long it took.
fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    println!("\n==> {name}");
    let t = Instant::now();
    f()?;
    println!("    {name}: done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a command, failing with its command line if it fails.
fn run(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Where the built SDK goes: the script-tag build at the top, the npm package in `esm/`.
pub const DIST: &str = "js-wrapper/dist";

fn build(root: &Path) -> Result {
    step(
        "build the SDK (cargo, wasm-bindgen, wasm-opt, esbuild, terser)",
        || build_sdk(root),
    )?;
    step("size report", || size::report(root, true).map(|_| ()))?;
    step("dashboard (uPlot from npm)", || {
        let vendor = root.join("dashboard/vendor");
        std::fs::create_dir_all(&vendor).map_err(|e| e.to_string())?;
        // For `--dashboard-dir dashboard` in development; the binary embeds uPlot from npm.
        let from = root.join("node_modules/uplot/dist");
        sync_dir(&from, &vendor).map_err(|e| format!("{e} (npm packages missing?)"))
    })?;
    step("build the collector", || {
        run(cargo().args(["build", "-p", "footfall-collector"]))
    })
}

fn build_sdk(root: &Path) -> Result {
    let map = target_dir(root).join("wasm32-unknown-unknown/wasm/footfall_sdk.map");
    run(cargo()
        .args([
            "build",
            "-p",
            "footfall-sdk",
            "--lib",
            "--no-default-features",
        ])
        .args(["--target", "wasm32-unknown-unknown", "--profile", "wasm"])
        // The linker's map tells where each constant begins and ends, for `trim`. Its data
        // goes first in memory, at 1 KiB, not after the 1 MiB stack: every address the code
        // names is then a two-byte constant, not a three-byte one (−130 B gzip). The price: a
        // stack that overflowed would run into the data instead of trapping, and the SDK
        // recurses nowhere deeper than `write_u64`'s twenty calls.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!(
                "{}\x1f-Clink-arg=--Map={}\x1f-Clink-arg=--no-stack-first",
                neutral_paths(),
                map.display()
            ),
        ))?;
    let wasm = target_dir(root).join("wasm32-unknown-unknown/wasm/footfall_sdk.wasm");
    let gen = target_dir(root).join("sdk-gen");
    // Built in a staging dir, then copied to DIST file by file where changed: the collector
    // embeds DIST (its build script reruns when a file there is touched).
    let dist = gen.join("dist");
    let esm = dist.join("esm");
    let _ = std::fs::remove_dir_all(&gen);
    std::fs::create_dir_all(&esm).map_err(|e| e.to_string())?;
    let bindgen = |target: &str, out: &str, name: &str, extra: &[&str]| {
        run(Command::new("wasm-bindgen")
            .args(["--target", target, "--no-typescript", "--out-name", name])
            .args(extra)
            .arg("--out-dir")
            .arg(gen.join(out))
            .arg(&wasm))
    };
    bindgen("web", "script", "footfall", &[])?;
    bindgen("web", "esm", "footfall_sdk", &[])?;
    // wasm-bindgen keeps the names, which the guard reads.
    guard::no_fmt(&gen.join("script/footfall_bg.wasm"))?;
    // The panic paths trap at once, so that nothing names their messages (see trim.rs).
    for wasm in [
        gen.join("script/footfall_bg.wasm"),
        gen.join("esm/footfall_sdk_bg.wasm"),
    ] {
        rewrite(&wasm, |bytes| {
            let (blanked, names) = trim::blank_traps(bytes)?;
            if names.len() != trim::TRAPS.len() {
                println!(
                    "    trapping at once: {} of the panic paths",
                    names.join(", ")
                );
            }
            Ok(blanked)
        })?;
    }
    // The script tag's glue reads neither the externref table nor the statics of the abort
    // handler, and starts nothing (see trim.rs): without their exports, wasm-opt drops them.
    rewrite(
        &gen.join("script/footfall_bg.wasm"),
        trim::without_unread_exports,
    )?;
    // binaryen from npm: Debian's wasm-opt 108 corrupts wasm-bindgen's externref table.
    let wasm_opt = root.join("node_modules/.bin/wasm-opt");
    // `--converge` repeats -Oz while it still shrinks the module; the target_features section
    // is for tools (wasm-bindgen has read it), browsers ignore it.
    // `--gufa-optimizing` finds what each value can be over the whole module (sound);
    // `--low-memory-unused` lets it fold constant offsets into addresses, as nothing uses the
    // first kilobyte of memory: the linker puts the data at 1 KiB, then the stack (see the
    // build above) (-151 B gzip together).
    // `--flatten --rereloop` first rebuilds every function's control flow from its basic
    // blocks, which -Oz then shrinks further than wasm-bindgen's output as it came; a second
    // `--local-cse -Oz` after the converged -Oz, and functions ordered by use, so that the
    // most called get the shortest indices (-193 B gzip together, measured on the wasm alone).
    // `-aimfs=7` inlines every function of at most 7 bytes (binaryen's -Oz: 2), measured best
    // of 2 to 24 (-23 B gzip on the wasm alone; 6 and 8 gave -19 and -6, 10 and up grew it).
    const OPT_ARGS: &[&str] = &[
        "-aimfs=7",
        "--flatten",
        "--rereloop",
        "-Oz",
        "--gufa-optimizing",
        "--low-memory-unused",
        "--converge",
        "--local-cse",
        "-Oz",
        "--reorder-functions",
        "--strip-debug",
        "--strip-producers",
        "--strip-target-features",
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-mutable-globals",
        "--enable-reference-types",
    ];
    // The optimising pass takes most of a warm build: its output is kept by the hash of its
    // input and arguments, and reused while neither changes.
    let cache = target_dir(root).join("wasm-opt-cache");
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let opt = |from: PathBuf, to: PathBuf| -> Result {
        use std::hash::{Hash, Hasher};
        let input = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&input, OPT_ARGS).hash(&mut h);
        let kept = cache.join(format!("{:016x}-{}.wasm", h.finish(), input.len()));
        if std::fs::copy(&kept, &to).is_ok() {
            return Ok(());
        }
        run(Command::new(&wasm_opt)
            .args(OPT_ARGS)
            .arg(&from)
            .arg("-o")
            .arg(&to))?;
        std::fs::copy(&to, &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
        Ok(())
    };
    opt(
        gen.join("script/footfall_bg.wasm"),
        dist.join("footfall_bg.wasm"),
    )?;
    opt(
        gen.join("esm/footfall_sdk_bg.wasm"),
        esm.join("footfall_sdk_bg.wasm"),
    )?;
    // Then the constants only code wasm-opt removed had named (see trim.rs).
    // Written by the link; a wasm cargo found fresh was linked with it before.
    let map_text = read(&map).map_err(|e| {
        format!(
            "{e} (the linker's map of the wasm; `cargo clean -p footfall-sdk \
             --target wasm32-unknown-unknown --profile wasm` relinks it)"
        )
    })?;
    let items = trim::rodata_items(&map_text)?;
    let starts = trim::starts(&map_text)?;
    for wasm in [
        dist.join("footfall_bg.wasm"),
        esm.join("footfall_sdk_bg.wasm"),
    ] {
        rewrite(&wasm, |bytes| {
            let t = trim::dead_data(bytes, &items, &starts)?;
            println!(
                "    {}: {} B of dead constants zeroed, {} B of {} B left",
                wasm.file_name().unwrap_or_default().to_string_lossy(),
                t.zeroed,
                t.wasm.len(),
                bytes.len()
            );
            Ok(t.wasm)
        })?;
    }

    // Script tag: wasm-bindgen's glue, the wasm's host and our wrapper, bundled by esbuild
    // into one classic script. The glue is the ES module one, its helpers and loaders replaced
    // by glue-helpers.js (`script_glue`), and the whole is one function (`--format=iife`), so
    // the glue's, the host's and its rooms' top-level names are shortened and none is left on
    // the page.
    let glue = minify_names(
        &wasm_opt,
        &dist.join("footfall_bg.wasm"),
        &script_glue(
            &read(&gen.join("script/footfall.js"))?,
            &read(&root.join("js-wrapper/src/glue-helpers.js"))?,
        )?,
    )?;
    write(&gen.join("script/glue.js"), &glue)?;
    let host = host_js(root)?;
    let wrapper = read(&root.join("js-wrapper/src/script-tag.js"))?;
    let joined = gen.join("script/footfall.entry.js");
    write(
        &joined,
        &[script_glue_import(&glue)?, host.clone(), wrapper].join("\n"),
    )?;
    minify(
        root,
        &joined,
        &dist.join("footfall.js"),
        // The loader left out names `import.meta`, which a classic script does not have.
        &[
            "--bundle",
            "--format=iife",
            "--log-override:empty-import-meta=silent",
        ],
    )?;
    embed_wasm(&dist.join("footfall.js"), &dist.join("footfall_bg.wasm"))?;
    minify(
        root,
        &root.join("js-wrapper/src/loader.js"),
        &dist.join("loader.js"),
        &[],
    )?;

    // npm package: wasm-bindgen's ES module glue, our wrapper, types, manifest.
    std::fs::copy(gen.join("esm/footfall_sdk.js"), esm.join("footfall_sdk.js"))
        .map_err(|e| e.to_string())?;
    for f in ["index.js", "index.d.ts"] {
        std::fs::copy(root.join("js-wrapper/src").join(f), esm.join(f))
            .map_err(|e| e.to_string())?;
    }
    // The host is a plain script (the script tag includes it as it is); the package's copy
    // is the same rooms and composer, exporting the one function.
    write(
        &esm.join("host.js"),
        &[host, "export { footfallHost };\n".into()].concat(),
    )?;
    std::fs::copy(
        root.join("js-wrapper/package.json"),
        esm.join("package.json"),
    )
    .map_err(|e| e.to_string())?;
    sync_dir(&dist, &root.join(DIST))
}

/// The rooms of the wasm's JavaScript host (`js-wrapper/src/host/`), one per browser facility,
/// each a plain script declaring one function; `host.js` puts them together.
const HOST_ROOMS: &[&str] = &[
    "cookie.js",
    "storage.js",
    "net.js",
    "page.js",
    "locks.js",
    "tasks.js",
    "api.js",
];

/// The host as one plain script: its rooms, then `host.js`, which declares `footfallHost`.
fn host_js(root: &Path) -> Result<String> {
    let src = root.join("js-wrapper/src");
    // A room added to the folder but not to the list would be left out of the build.
    let mut found: Vec<String> = std::fs::read_dir(src.join("host"))
        .map_err(|e| format!("js-wrapper/src/host: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    found.sort();
    let mut listed: Vec<String> = HOST_ROOMS.iter().map(|r| r.to_string()).collect();
    listed.sort();
    if found != listed {
        return Err(format!(
            "js-wrapper/src/host holds {found:?}, the build lists {listed:?} (HOST_ROOMS)"
        ));
    }
    let mut parts = Vec::new();
    for room in HOST_ROOMS {
        parts.push(read(&src.join("host").join(room))?);
    }
    parts.push(read(&src.join("host.js"))?);
    Ok(parts.join("\n"))
}

/// Where wasm-bindgen's glue passes from its import object to its helpers.
const GLUE_HELPERS_START: &str = "\nlet cachedDataViewMemory0 = null;\n";

/// wasm-bindgen's glue for the script tag: its export wrappers and import object as they are,
/// then `js-wrapper/src/glue-helpers.js` in place of its helpers and loaders. Fails if the
/// glue is not laid out as expected, or if the head uses a helper the file does not define.
fn script_glue(glue: &str, helpers: &str) -> Result<String> {
    let Some((head, tail)) = glue.split_once(GLUE_HELPERS_START) else {
        return Err("the glue's helpers do not start as expected".into());
    };
    // The import that fills the externref table, which the script tag's wasm no longer has
    // (`trim::without_unread_exports`).
    let init = format!("        {}: function() {{\n", trim::TABLE_INIT);
    let head = match head.split_once(&init) {
        Some((before, after)) => match after.split_once("\n        },\n") {
            Some((_, rest)) => format!("{before}{rest}"),
            None => {
                return Err(format!(
                    "the glue's {} does not end as expected",
                    trim::TABLE_INIT
                ))
            }
        },
        None => return Err(format!("the glue has no {}", trim::TABLE_INIT)),
    };
    let head = head.as_str();
    if !head.contains("function __wbg_get_imports()")
        || !tail
            .trim_end()
            .ends_with("export { initSync, __wbg_init as default };")
    {
        return Err("the glue is not laid out as expected".into());
    }
    let defined = |text: &str, name: &str| {
        text.contains(&format!("\nfunction {name}("))
            || text.contains(&format!("\nlet {name} "))
            || text.contains(&format!("\nconst {name} "))
    };
    let tail = format!("\n{tail}");
    let names = tail
        .lines()
        .filter_map(|l| {
            let l = l
                .strip_prefix("function ")
                .or_else(|| l.strip_prefix("let "));
            l?.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
        })
        .filter(|name| !name.is_empty() && head.contains(name));
    let helpers = format!("\n{helpers}");
    for name in names {
        if !defined(&helpers, name) {
            return Err(format!(
                "js-wrapper/src/glue-helpers.js lacks the glue's {name}"
            ));
        }
    }
    Ok([head, helpers.as_str()].concat())
}

/// The glue's exports as the object `footfall_wasm` that script-tag.js hands the host: named
/// imports, and `initSync` from glue-helpers.js.
fn script_glue_import(glue: &str) -> Result<String> {
    let mut names: Vec<&str> = glue
        .lines()
        .filter_map(|l| l.strip_prefix("export function "))
        .filter_map(|l| l.split('(').next())
        .collect();
    if !glue.contains("export { initSync };") {
        return Err("the glue does not export initSync as expected".into());
    }
    names.push("initSync");
    let list = names.join(", ");
    Ok(format!(
        "import {{ {list} }} from \"./glue.js\";\nconst footfall_wasm = {{ {list} }};\n"
    ))
}

/// The name in script-tag.js that stands for the wasm's bytes: a global that no page defines,
/// so the minifier keeps it as it is (a string there would be folded: its `length` read at
/// build time).
const WASM_PLACEHOLDER: &str = "FOOTFALL_WASM_BYTES";

/// Writes the wasm into the minified script-tag build in place of [`WASM_PLACEHOLDER`], as a
/// string literal of its bytes as they are (only backslash, `'`, LF and CR escaped). The page
/// has the bytes as soon as the script runs (no second request that can still be on its way
/// when the page goes), and gzip sees the wasm's own bytes. The script is ASCII apart from
/// them and served as x-user-defined (collector/src/assets.rs), which reads each byte as one
/// character whose low byte it is (0x80 to 0xFF as U+F780 to U+F7FF), all script-tag.js keeps.
fn embed_wasm(script: &Path, wasm: &Path) -> Result {
    let js = read(script)?;
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    if !js.is_ascii() {
        return Err(format!("{}: not ASCII", script.display()));
    }
    let Some((before, after)) = js.split_once(WASM_PLACEHOLDER) else {
        return Err(format!(
            "{}: no placeholder {WASM_PLACEHOLDER}",
            script.display()
        ));
    };
    if after.contains(WASM_PLACEHOLDER) {
        return Err(format!(
            "{}: the placeholder {WASM_PLACEHOLDER} twice",
            script.display()
        ));
    }
    let mut out = Vec::with_capacity(js.len() + bytes.len() + bytes.len() / 64);
    out.extend_from_slice(before.as_bytes());
    // In single quotes: the wasm has few (hundreds of double quotes: `local.tee`).
    out.push(b'\'');
    for b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
    out.extend_from_slice(after.as_bytes());
    std::fs::write(script, out).map_err(|e| format!("{}: {e}", script.display()))
}

/// Makes `to` hold exactly the files of `from`, writing only those whose bytes differ.
fn sync_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut wanted = std::collections::HashSet::new();
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        wanted.insert(entry.file_name());
        if src.is_dir() {
            sync_dir(&src, &dst)?;
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        if std::fs::read(&dst).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&dst, bytes).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
    }
    for entry in std::fs::read_dir(to).map_err(|e| e.to_string())?.flatten() {
        if !wanted.contains(&entry.file_name()) {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    Ok(())
}

/// Gives the wasm's imports and exports one- or two-letter names (wasm-bindgen's are like
/// `__wbg_getItem_49556a3e59cfb688`, about a hundred of them, hashes that do not compress) and
/// renames them to match in the glue: the import object's keys, the `wasm.<export>` uses and
/// the import module. Fails if any name of the map is missing from the glue.
fn minify_names(wasm_opt: &Path, wasm: &Path, glue: &str) -> Result<String> {
    let out = Command::new(wasm_opt)
        .arg(wasm)
        // The features of the optimising run, and multivalue (which it read from the
        // target_features section, stripped by then).
        .args([
            "--minify-imports-and-exports-and-modules",
            "--enable-multivalue",
        ])
        .args(["--enable-bulk-memory", "--enable-nontrapping-float-to-int"])
        .args(["--enable-sign-ext", "--enable-mutable-globals"])
        .args(["--enable-reference-types", "-o"])
        .arg(wasm)
        .output()
        .map_err(|e| format!("cannot start wasm-opt: {e}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "wasm-opt: minifying names failed ({}): {why}",
            out.status
        ));
    }
    let map: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("wasm-opt's name map: {e}"))?;
    let pairs = |key: &str| map[key].as_array().cloned().unwrap_or_default();
    let mut renames = std::collections::HashMap::new();
    let mut module = None;
    for import in pairs("imports") {
        // [module, old name, new name]; the module (one, the glue's) becomes `a`.
        module = import[0].as_str().map(str::to_owned);
        renames.insert(
            import[1].as_str().unwrap_or_default().to_owned(),
            import[2].as_str().unwrap_or_default().to_owned(),
        );
    }
    let module = module.ok_or("wasm-opt's name map has no imports")?;
    let mut exports = std::collections::HashMap::new();
    for export in pairs("exports") {
        exports.insert(
            export[0].as_str().unwrap_or_default().to_owned(),
            export[1].as_str().unwrap_or_default().to_owned(),
        );
    }
    // Rewrite identifier by identifier: an import name is renamed wherever it stands (it is a
    // key of the import object), an export only after `wasm.` (`init` is also a glue function).
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut js = String::with_capacity(glue.len());
    let mut seen = std::collections::HashSet::new();
    let mut rest = glue;
    while let Some(start) = rest.find(is_ident) {
        js.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c| !is_ident(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        let after_wasm = js
            .strip_suffix("wasm.")
            .is_some_and(|before| !before.ends_with(is_ident));
        let new = if after_wasm {
            exports.get(word)
        } else {
            renames.get(word)
        };
        if let Some(new) = new {
            seen.insert(word);
            js.push_str(new);
        } else {
            js.push_str(word);
        }
        rest = &rest[start + word_len..];
    }
    js.push_str(rest);
    // Every import must be in the glue (exports it does not use, it need not name).
    let missing: Vec<&String> = renames
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("imports of the wasm not in the glue: {missing:?}"));
    }
    let quoted = format!("\"{module}\": import0");
    if !js.contains(&quoted) {
        return Err(format!("the glue's import object is not {quoted}"));
    }
    Ok(js.replace(&quoted, "\"a\": import0"))
}

/// esbuild bundles and lowers to ES2019, then terser minifies: terser's compressor, three
/// passes, writes the script tag's JavaScript 185 B (gzip) shorter than esbuild's `--minify`,
/// and 19 B more with function expressions written as arrow functions and methods
/// (`unsafe_arrows`, `unsafe_methods`: safe here, as no code constructs them with `new` or
/// reads their prototype, nor the `this` of one that does not read it).
fn minify(root: &Path, from: &Path, to: &Path, extra: &[&str]) -> Result {
    let bundled = to.with_extension("bundled.js");
    run(Command::new(root.join("node_modules/.bin/esbuild"))
        .arg(from)
        .args(["--target=es2019", "--log-level=warning"])
        .args(extra)
        .arg(format!("--outfile={}", bundled.display())))?;
    run(Command::new(root.join("node_modules/.bin/terser"))
        .arg(&bundled)
        .args([
            "--compress",
            "passes=3,unsafe_arrows,unsafe_methods",
            "--mangle",
            "--ecma",
            "2019",
        ])
        .arg("--output")
        .arg(to))?;
    std::fs::remove_file(&bundled).map_err(|e| format!("{}: {e}", bundled.display()))
}

pub fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Replaces the bytes of file `p` with what `f` makes of them.
fn rewrite(p: &Path, f: impl FnOnce(&[u8]) -> Result<Vec<u8>>) -> Result {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::write(p, f(&bytes)?).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &Path, text: &str) -> Result {
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Rust flags that put a neutral name for cargo's folder in panic messages' source paths of
/// dependencies (`/cargo/registry/...`), so that neither the wasm every visitor loads nor the
/// release binary tells where they were built. The workspace's own paths are relative already;
/// the flags do not name the checkout, so a build in another clone (CI's) reuses the cache.
fn neutral_paths() -> String {
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    format!("--remap-path-prefix={}=/cargo", cargo_home.display())
}

/// The release binary, as `cargo xtask dist` leaves it.
pub fn release_bin(root: &Path) -> PathBuf {
    target_dir(root).join("dist/footfall-collector")
}

/// `cargo xtask dist`: the release build of the collector (the SDK and dashboard inside it),
/// copied to `target/dist/`, and a `.tar.gz` beside it with an example config, a systemd unit,
/// the reverse proxy config and INSTALL. Fails if a path of this machine is in the binary.
fn dist(root: &Path) -> Result {
    let version = env!("CARGO_PKG_VERSION");
    let out = target_dir(root).join("dist");
    step("build the release collector", || {
        run(cargo()
            .args(["build", "--release", "-p", "footfall-collector"])
            .env("CARGO_ENCODED_RUSTFLAGS", neutral_paths()))
    })?;
    step("package target/dist", || {
        let built = target_dir(root).join("release/footfall-collector");
        let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
        let home = std::env::var("HOME").unwrap_or_default();
        for path in [root.display().to_string(), format!("{home}/.cargo")] {
            if path.len() > 4 && find(&bytes, path.as_bytes()) {
                return Err(format!(
                    "the release binary holds the build machine's path {path}"
                ));
            }
        }
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        std::fs::copy(&built, release_bin(root)).map_err(|e| e.to_string())?;
        // Symbols are for debuggers; the copy a user gets goes without them.
        run(Command::new("strip").arg(release_bin(root)))?;
        let name = format!(
            "footfall-collector-{version}-{}-linux",
            std::env::consts::ARCH
        );
        let stage = out.join(&name);
        let _ = std::fs::remove_dir_all(&stage);
        std::fs::create_dir_all(&stage).map_err(|e| e.to_string())?;
        std::fs::copy(release_bin(root), stage.join("footfall-collector"))
            .map_err(|e| e.to_string())?;
        for f in [
            "footfall.toml",
            "footfall.service",
            "nginx.conf",
            "INSTALL.md",
        ] {
            let from = root.join("examples/deploy").join(f);
            std::fs::copy(&from, stage.join(f)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        let tarball = out.join(format!("{name}.tar.gz"));
        run(Command::new("tar")
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(&out)
            .arg(&name))?;
        let _ = std::fs::remove_dir_all(&stage);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "    {}: {:.1} MB\n    {}: {:.1} MB",
            release_bin(root).display(),
            size(&release_bin(root)) as f64 / 1e6,
            tarball.display(),
            size(&tarball) as f64 / 1e6
        );
        Ok(())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn demo(root: &Path, started: Instant, extra: &[String]) -> Result {
    use std::io::{BufRead, BufReader};
    let data = root.join("data");
    let mut child = Command::new(release_bin(root))
        .arg("--data-dir")
        .arg(&data)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the collector: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let url = first
        .strip_prefix("footfall listening on ")
        .ok_or_else(|| format!("the collector did not start: {first:?}"))?
        .to_owned();
    let token = read(&data.join("admin-token")).unwrap_or_default();
    let token = token.trim();
    println!(
        "\n{first}  (ready {:.0} s after `cargo xtask demo`)",
        started.elapsed().as_secs_f64()
    );
    println!("  demo shop:  {url}/demo/   (click around: every page and button is tracked)");
    println!("  dashboard:  {url}/   sign in with the admin token {token}");
    println!("  API:        curl -H 'Authorization: Bearer {token}' '{url}/api/v1/insights?metric=events&last=1d'");
    println!(
        "  data:       {} (SQLite; the token is in admin-token there)",
        data.display()
    );
    println!(
        "  binary:     {} (copy it anywhere: it needs nothing beside it)",
        release_bin(root).display()
    );
    println!("  stop with Ctrl-C\n");
    for line in lines.map_while(std::result::Result::ok) {
        println!("{line}");
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the collector stopped: {status}"))
    }
}

/// The cross-engine suite: the same scenarios in each engine (tests/e2e/engines/).
const ENGINES_SUITE: &str = "tests/e2e/engines.test.mjs";

/// Runs the cross-engine suite once per engine, the three at once (each mostly waits on its
/// browser); prints each one's output and time when it is done, and fails if any failed.
/// Prints what a run beside others wrote, once it has ended, under a line with its outcome and
/// time; true when it passed.
fn reported(name: &str, out: &std::process::Output, took: std::time::Duration) -> bool {
    let passed = out.status.success();
    println!(
        "\n--- {name}: {} in {:.0} s ---\n{}{}",
        if passed { "passed" } else { "FAILED" },
        took.as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    passed
}

fn engines(root: &Path) -> Result {
    let runs: Vec<_> = ["chromium", "firefox", "webkit"]
        .into_iter()
        .map(|engine| {
            let mut cmd = Command::new("node");
            cmd.env("FOOTFALL_COLLECTOR_BIN", release_bin(root))
                .env("FOOTFALL_ENGINES", engine)
                .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
                .arg(root.join(ENGINES_SUITE));
            let run = std::thread::spawn(move || {
                let t = Instant::now();
                let out = cmd.output();
                (out, t.elapsed())
            });
            (engine, run)
        })
        .collect();
    let mut failed = vec![];
    for (engine, run) in runs {
        let (out, took) = run
            .join()
            .map_err(|_| format!("{engine}: the runner panicked"))?;
        let out = out.map_err(|e| format!("cannot start node for {engine}: {e}"))?;
        if !reported(engine, &out, took) {
            failed.push(engine);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the cross-engine suite failed in {}",
            failed.join(", ")
        ))
    }
}

/// The ClickHouse suites (collector test targets) that run a second time on chDB.
const CHDB_SUITES: &[&str] = &[
    "store_suite",
    "scale_out",
    "journeys",
    "erase_clickhouse",
    "ingest_clickhouse",
    "layout_clickhouse",
    "rollups_clickhouse",
];

/// Builds every workspace test without running one, and answers the executables of the test
/// targets named `names`, in that order.
fn test_binaries(names: &[&str]) -> Result<Vec<PathBuf>> {
    let out = cargo()
        .args(["test", "--workspace", "--no-run"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the tests failed ({})", out.status));
    }
    let mut found: Vec<(String, PathBuf)> = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = &msg["target"];
        if msg["reason"] == "compiler-artifact" && target["kind"][0] == "test" {
            if let (Some(name), Some(exe)) = (target["name"].as_str(), msg["executable"].as_str()) {
                found.push((name.to_owned(), PathBuf::from(exe)));
            }
        }
    }
    names
        .iter()
        .map(|name| {
            found
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, exe)| exe.clone())
                .ok_or_else(|| format!("cargo built no test named {name}"))
        })
        .collect()
}

fn test(root: &Path) -> Result {
    let t = Instant::now();
    step("setup", || setup::all(root, true))?;
    // First: the collector embeds the built SDK, so clippy and the tests need it. The
    // end-to-end tests run the release binary a user would copy.
    build(root)?;
    dist(root)?;
    step("cargo fmt --check", || {
        run(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    step("cargo clippy (warnings denied)", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        run(cargo().args([
            "clippy",
            "-p",
            "footfall-sdk",
            "--all-targets",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The wasm that ships, without `std` (see sdk-wasm/src/lib.rs).
        run(cargo().args([
            "clippy",
            "-p",
            "footfall-sdk",
            "--lib",
            "--no-default-features",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // The ClickHouse suites run on Debian's 18.16 with the native tests; the store's SQL must
    // also run on current ClickHouse: the same suites again on chDB's engine. Their binaries
    // are built once with the others and run directly (no second cargo, so no wait for its
    // lock), beside everything that follows; their output comes at the end.
    let mut suites = vec![];
    step("build the native tests", || {
        suites = test_binaries(CHDB_SUITES)?;
        Ok(())
    })?;
    let python = setup::chdb(root)?;
    println!("\n==> ClickHouse tests on current ClickHouse (chDB), beside the other tests");
    let collector = root.join("collector");
    let chdb = std::thread::spawn(move || {
        let t = Instant::now();
        // Every suite's output in one, failed if any failed.
        let all = suites.iter().try_fold(
            std::process::Output {
                status: std::process::ExitStatus::default(),
                stdout: vec![],
                stderr: vec![],
            },
            |mut all, suite| {
                let out = Command::new(suite)
                    .current_dir(&collector)
                    .env("FOOTFALL_TEST_CLICKHOUSE", "current")
                    .env("FOOTFALL_CHDB_PYTHON", &python)
                    .output()
                    .map_err(|e| format!("cannot start {}: {e}", suite.display()))?;
                all.stdout
                    .extend(format!("\n{}\n", suite.display()).bytes());
                all.stdout.extend(out.stdout);
                all.stderr.extend(out.stderr);
                if !out.status.success() {
                    all.status = out.status;
                }
                Ok::<_, String>(all)
            },
        );
        (all, t.elapsed())
    });
    step(
        "native tests",
        || run(cargo().args(["test", "--workspace"])),
    )?;
    step("wasm tests (wasm-bindgen-test in Node.js)", || {
        run(cargo()
            .args([
                "test",
                "-p",
                "footfall-sdk",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            ))
    })?;
    let browsers = step("end-to-end tests in Chromium", || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/e2e"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
            .filter(|p| !p.ends_with(ENGINES_SUITE))
            .collect();
        files.sort();
        run(Command::new("node")
            .env("FOOTFALL_COLLECTOR_BIN", release_bin(root))
            .args(["--test", "--test-concurrency=1"])
            .args(files))
    })
    .and_then(|()| {
        step(
            "end-to-end tests in every engine (Chromium, Firefox, WebKit; in parallel)",
            || engines(root),
        )
    });
    let (out, took) = chdb
        .join()
        .map_err(|_| "the chDB runner panicked".to_string())?;
    let out = out?;
    let passed = reported("ClickHouse tests on current ClickHouse (chDB)", &out, took);
    browsers?;
    if !passed {
        return Err("the ClickHouse suites failed on current ClickHouse (chDB)".into());
    }
    println!("\nall checks passed in {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A glue laid out as wasm-bindgen's: export wrappers and the import object, then helpers.
    const GLUE: &str = concat!(
        "export function init(s) {\n    const ptr0 = passStringToWasm0(s);\n}\n",
        "function __wbg_get_imports() {\n    const import0 = {\n",
        "        warn: function(arg0) {\n            footfall_host.warn(arg0);\n        },\n",
        "        __wbindgen_init_externref_table: function() {\n",
        "            const table = wasm.t;\n            table.set(0, undefined);\n        },\n",
        "    };\n    return import0;\n}\n",
        "let cachedDataViewMemory0 = null;\n",
        "function passStringToWasm0(arg) {\n    return 0;\n}\n",
        "function unusedHelper() {}\n",
        "export { initSync, __wbg_init as default };\n",
    );

    #[test]
    fn the_glue_keeps_its_head_and_takes_the_helpers_file() {
        let helpers = "function passStringToWasm0(arg) {}\nexport { initSync };\n";
        let js = script_glue(GLUE, helpers).unwrap();
        assert!(js.starts_with("export function init(s)"));
        assert!(js.contains("function __wbg_get_imports()"));
        assert!(js.contains("footfall_host.warn(arg0);\n        },\n    };"));
        assert!(
            !js.contains("externref") && !js.contains("table"),
            "the table's filling goes: {js}"
        );
        assert!(js.ends_with(helpers));
        assert!(!js.contains("unusedHelper") && !js.contains("__wbg_init"));
    }

    #[test]
    fn the_glue_fails_without_a_helper_its_head_uses_or_its_layout() {
        let err = script_glue(GLUE, "export { initSync };\n").unwrap_err();
        assert!(err.contains("passStringToWasm0"), "{err}");
        let moved = GLUE.replace("let cachedDataViewMemory0", "let cachedView");
        assert!(script_glue(&moved, "").is_err());
        let other_end = GLUE.replace("__wbg_init as default", "__wbg_init as load");
        assert!(script_glue(&other_end, "").is_err());
        let no_table = GLUE.replace("__wbindgen_init_externref_table", "__wbindgen_other");
        let err = script_glue(&no_table, "").unwrap_err();
        assert!(err.contains("__wbindgen_init_externref_table"), "{err}");
    }
}
