//! `cargo xtask`: Footfall's one entry point for setting up, building, running and testing.
//!
//! - `cargo xtask demo`  — install what is missing, build everything, start the collector with
//!   the demo shop on SQLite under `./data`, print the demo page's and the API's URLs.
//! - `cargo xtask test`  — install what is missing, then fmt check, clippy (warnings denied),
//!   native tests, wasm tests, the SDK build with its size budget, and the Chromium tests.
//! - `cargo xtask build` / `setup` / `size` — the steps on their own.

mod setup;
mod size;

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
        Some("demo") => setup::all(&root, false)
            .and_then(|_| build(&root))
            .and_then(|_| demo(&root, &args[1..])),
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
  test   run every check and test: fmt, clippy, native, wasm, end-to-end in Chromium
  build  build the SDK (wasm + JS) and the collector
  setup  install what is missing (wasm target, wasm-bindgen CLI, binaryen, Chromium, ClickHouse, npm packages)
  size   print the SDK's size report (raw, gzip, brotli)";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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

fn collector_bin(root: &Path) -> PathBuf {
    target_dir(root).join("debug/footfall-collector")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Where the built SDK goes: the script-tag build at the top, the npm package in `esm/`.
pub const DIST: &str = "js-wrapper/dist";

fn build(root: &Path) -> Result {
    step(
        "build the SDK (cargo, wasm-bindgen, wasm-opt, esbuild)",
        || build_sdk(root),
    )?;
    step("size report", || size::report(root, true).map(|_| ()))?;
    step("dashboard (uPlot from npm)", || {
        let vendor = root.join("dashboard/vendor");
        std::fs::create_dir_all(&vendor).map_err(|e| e.to_string())?;
        for f in ["uPlot.iife.min.js", "uPlot.min.css"] {
            std::fs::copy(root.join("node_modules/uplot/dist").join(f), vendor.join(f))
                .map_err(|e| format!("{f}: {e} (npm packages missing?)"))?;
        }
        Ok(())
    })?;
    step("build the collector", || {
        run(cargo().args(["build", "-p", "footfall-collector"]))
    })
}

fn build_sdk(root: &Path) -> Result {
    run(cargo().args([
        "build",
        "-p",
        "footfall-sdk",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm",
    ]))?;
    let wasm = target_dir(root).join("wasm32-unknown-unknown/wasm/footfall_sdk.wasm");
    let gen = target_dir(root).join("sdk-gen");
    let dist = root.join(DIST);
    let esm = dist.join("esm");
    let _ = std::fs::remove_dir_all(&gen);
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&esm).map_err(|e| e.to_string())?;
    let bindgen = |target: &str, out: &str, name: &str, extra: &[&str]| {
        run(Command::new("wasm-bindgen")
            .args(["--target", target, "--no-typescript", "--out-name", name])
            .args(extra)
            .arg("--out-dir")
            .arg(gen.join(out))
            .arg(&wasm))
    };
    bindgen(
        "no-modules",
        "script",
        "footfall",
        &["--no-modules-global", "footfall_wasm"],
    )?;
    bindgen("web", "esm", "footfall_sdk", &[])?;
    // binaryen from npm: Debian's wasm-opt 108 corrupts wasm-bindgen's externref table.
    let wasm_opt = root.join("node_modules/.bin/wasm-opt");
    let opt = |from: PathBuf, to: PathBuf| {
        run(Command::new(&wasm_opt)
            .args([
                "-Oz",
                "--strip-debug",
                "--strip-producers",
                "--enable-bulk-memory",
            ])
            .args(["--enable-nontrapping-float-to-int", "--enable-sign-ext"])
            .args(["--enable-mutable-globals", "--enable-reference-types"])
            .arg(from)
            .arg("-o")
            .arg(to))
    };
    opt(
        gen.join("script/footfall_bg.wasm"),
        dist.join("footfall_bg.wasm"),
    )?;
    opt(
        gen.join("esm/footfall_sdk_bg.wasm"),
        esm.join("footfall_sdk_bg.wasm"),
    )?;

    // Script tag: wasm-bindgen's glue and our wrapper, minified as one classic script.
    let glue = read(&gen.join("script/footfall.js"))?;
    let wrapper = read(&root.join("js-wrapper/src/script-tag.js"))?;
    let joined = gen.join("footfall.js");
    write(&joined, &[glue, wrapper].join("\n"))?;
    minify(root, &joined, &dist.join("footfall.js"))?;
    minify(
        root,
        &root.join("js-wrapper/src/loader.js"),
        &dist.join("loader.js"),
    )?;

    // npm package: wasm-bindgen's ES module glue, our wrapper, types, manifest.
    std::fs::copy(gen.join("esm/footfall_sdk.js"), esm.join("footfall_sdk.js"))
        .map_err(|e| e.to_string())?;
    for f in ["index.js", "index.d.ts"] {
        std::fs::copy(root.join("js-wrapper/src").join(f), esm.join(f))
            .map_err(|e| e.to_string())?;
    }
    std::fs::copy(
        root.join("js-wrapper/package.json"),
        esm.join("package.json"),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn minify(root: &Path, from: &Path, to: &Path) -> Result {
    run(Command::new(root.join("node_modules/.bin/esbuild"))
        .arg(from)
        .args(["--minify", "--target=es2019", "--log-level=warning"])
        .arg(format!("--outfile={}", to.display())))
}

pub fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &Path, text: &str) -> Result {
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
}

fn demo(root: &Path, extra: &[String]) -> Result {
    use std::io::{BufRead, BufReader};
    let data = root.join("data");
    let mut child = Command::new(collector_bin(root))
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
    println!("\n{first}");
    println!("  demo shop:  {url}/demo/");
    println!("  API:        curl -H 'Authorization: Bearer {}' '{url}/api/v1/insights?metric=events&last=1d'", token.trim());
    println!("  data:       {} (SQLite)", data.display());
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

fn test(root: &Path) -> Result {
    let t = Instant::now();
    step("setup", || setup::all(root, true))?;
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
        ]))
    })?;
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
    build(root)?;
    step("end-to-end tests in Chromium", || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/e2e"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
            .collect();
        files.sort();
        run(Command::new("node")
            .env("FOOTFALL_COLLECTOR_BIN", collector_bin(root))
            .args(["--test", "--test-concurrency=1"])
            .args(files))
    })?;
    println!("\nall checks passed in {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}
