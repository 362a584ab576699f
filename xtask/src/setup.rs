//! Installs what the build and the tests need (the wasm target, the wasm-bindgen CLI, Chromium,
//! nginx, openssl and sqlite3 for the TLS proxy test, ClickHouse 18.16 for the collector's
//! scale-out tests and chDB from PyPI for their pass on current ClickHouse, and from npm:
//! binaryen's wasm-opt, esbuild, terser, playwright-core, puppeteer-core, selenium-webdriver), Firefox
//! ESR, WebKitGTK's WebKitWebDriver and Xvfb for the cross-engine tests, skipping what is
//! already there, so a warm run costs a few version checks.

use crate::{read, run, step, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Everything: with `for_tests`, also Chromium, nginx and ClickHouse (the demo needs none).
pub fn all(root: &Path, for_tests: bool) -> Result {
    step("wasm32 target", wasm_target)?;
    step("wasm-bindgen CLI", || wasm_bindgen_cli(root))?;
    let mut packages = vec![];
    if for_tests {
        packages.push(("chromium", "chromium"));
        // The tests run `clickhouse-server` themselves (Debian's is in /usr/sbin, which a
        // non-root PATH may lack).
        let clickhouse = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse"];
        if !clickhouse.iter().any(|p| Path::new(p).exists()) {
            packages.push(("clickhouse-server", "clickhouse-server"));
        }
        // tests/e2e/proxy.test.mjs: the collector behind nginx with TLS (a certificate made
        // by openssl), the stored client IPs read with sqlite3. The test runs /usr/sbin/nginx
        // itself; the package's service is not used.
        if !Path::new("/usr/sbin/nginx").exists() {
            packages.push(("nginx", "nginx"));
        }
        packages.push(("openssl", "openssl"));
        packages.push(("sqlite3", "sqlite3"));
        // tests/e2e/engines.test.mjs: the SDK in Firefox ESR (puppeteer-core over WebDriver
        // BiDi) and in WebKitGTK's MiniBrowser (WebKitWebDriver, on an Xvfb display the test
        // starts itself).
        packages.push(("firefox-esr", "firefox-esr"));
        packages.push(("WebKitWebDriver", "webkit2gtk-driver"));
        packages.push(("Xvfb", "xvfb"));
    }
    if which("node").is_none() || which("npm").is_none() {
        packages.push(("node", "nodejs"));
        packages.push(("npm", "npm"));
    }
    step("Debian packages", || apt(&packages))?;
    step("npm packages", || npm(root))?;
    if for_tests {
        step("chDB (current ClickHouse, from PyPI)", || {
            chdb(root).map(drop)
        })?;
    }
    Ok(())
}

/// The chDB release the tests run: its engine is ClickHouse 26.9.
const CHDB: &str = "chdb==4.4.0";

/// A Python with chDB, in a virtual environment under the target dir: its interpreter.
pub fn chdb(root: &Path) -> Result<PathBuf> {
    let venv = crate::target_dir(root).join("chdb-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("footfall-installed");
    if read(&stamp).is_ok_and(|s| s.trim() == CHDB) {
        println!("    already installed");
        return Ok(python);
    }
    let make = || {
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !make() {
        // Debian's python3 makes virtual environments only with python3-venv.
        apt_install(&["python3", "python3-venv"])?;
        if !make() {
            return Err(format!("python3 -m venv {} failed", venv.display()));
        }
    }
    println!("    installing {CHDB} (about 150 MB with its dependencies)");
    run(Command::new(&python).args(["-m", "pip", "install", "-q", CHDB]))?;
    std::fs::write(&stamp, CHDB).map_err(|e| e.to_string())?;
    Ok(python)
}

fn which(cmd: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wasm_target() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        println!("    already installed");
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// The `wasm-bindgen` version in Cargo.lock: the CLI must be exactly this one.
fn locked_wasm_bindgen(root: &Path) -> Result<String> {
    let lock = read(&root.join("Cargo.lock"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("no wasm-bindgen in Cargo.lock".into())
}

fn wasm_bindgen_cli(root: &Path) -> Result {
    let want = locked_wasm_bindgen(root)?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        println!("    wasm-bindgen {want} already installed");
        return Ok(());
    }
    println!("    installing wasm-bindgen-cli {want} (about 2 min)");
    run(crate::cargo().args(["install", "wasm-bindgen-cli", "--version", &want, "--force"]))
}

fn apt(packages: &[(&str, &str)]) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(cmd, _)| which(cmd).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        println!("    already installed");
        return Ok(());
    }
    apt_install(&missing)
}

fn apt_install(missing: &[&str]) -> Result {
    println!("    installing {}", missing.join(" "));
    let root_user = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0");
    let apt = |args: &[&str]| {
        let mut c = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    apt(&args)
}

fn npm(root: &Path) -> Result {
    let stamp = root.join("node_modules/.package-lock.json");
    let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(installed), Some(lock)) = (fresh(&stamp), fresh(&root.join("package-lock.json"))) {
        let bins = ["wasm-opt", "terser"].map(|b| root.join("node_modules/.bin").join(b));
        if installed >= lock && bins.iter().all(|b| b.exists()) {
            println!("    already installed");
            return Ok(());
        }
    }
    // The browsers are Debian's: no npm package downloads one of its own.
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("PUPPETEER_SKIP_DOWNLOAD", "1"))
}
