//! A real ClickHouse server for a test: `clickhouse-server` run as an ordinary process with a
//! config written into a temp dir (free ports on 127.0.0.1, data and logs in that dir), killed
//! when dropped. `cargo xtask setup` installs the server; without it the test fails and says
//! so.
//!
//! With `FOOTFALL_TEST_CLICKHOUSE=current`, the same tests run against current ClickHouse
//! instead: the engine of chDB (`tests/clickhouse-current/server.py`, run by the Python named
//! by `FOOTFALL_CHDB_PYTHON`), which `cargo xtask test` sets up and runs after the 18.16 pass.

#![allow(dead_code)] // each test binary uses its own part of this helper

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ClickHouseServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub http_port: u16,
    tcp_port: u16,
    interserver_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary: `clickhouse-server`, or `clickhouse server` of the single binary.
fn binary() -> (PathBuf, Vec<&'static str>) {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("clickhouse-server");
        if p.exists() {
            return (p, vec![]);
        }
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("clickhouse");
        if p.exists() {
            return (p, vec!["server"]);
        }
    }
    panic!(
        "clickhouse-server is not installed: these tests run a real ClickHouse. \
         Install it with `cargo xtask setup` (or `apt-get install clickhouse-server`)."
    );
}

impl ClickHouseServer {
    pub fn start() -> ClickHouseServer {
        let mut s = ClickHouseServer {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            http_port: 0,
            tcp_port: 0,
            interserver_port: 0,
        };
        // A free port is only known to be free when asked: another process may bind it before
        // the server does (other suites start servers beside this one). Then new ports.
        for attempt in 1.. {
            s.http_port = free_port();
            s.tcp_port = free_port();
            s.interserver_port = free_port();
            s.write_config();
            match s.try_run() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("Address already in use") => continue,
                Err(log) => panic!("clickhouse-server did not start:\n{log}"),
            }
        }
        s
    }

    /// `http://127.0.0.1:PORT/DATABASE`, with `?native_port=PORT` on ClickHouse 18.16 (so
    /// that its tests read large answers over the native protocol, as the benchmarks do; the
    /// engine of chDB has no native port: its tests read them over HTTP).
    pub fn url(&self, database: &str) -> String {
        if std::env::var("FOOTFALL_TEST_CLICKHOUSE").as_deref() == Ok("current") {
            return format!("http://127.0.0.1:{}/{database}", self.http_port);
        }
        format!(
            "http://127.0.0.1:{}/{database}?native_port={}",
            self.http_port, self.tcp_port
        )
    }

    /// The server's configuration. It keeps an uncompressed cache, as the packaged
    /// configuration does (8 GiB there), so that statements read through it as the
    /// collector asks them to.
    fn write_config(&self) {
        let d = self.dir.path();
        let config = format!(
            r#"<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{inter}</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"#,
            d = d.display(),
            http = self.http_port,
            tcp = self.tcp_port,
            inter = self.interserver_port,
        );
        let users = r#"<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#;
        std::fs::create_dir_all(d.join("log")).unwrap();
        std::fs::write(d.join("config.xml"), config).unwrap();
        std::fs::write(d.join("users.xml"), users).unwrap();
    }

    fn run(&mut self) {
        if let Err(log) = self.try_run() {
            panic!("clickhouse-server did not start:\n{log}");
        }
    }

    /// Starts the server and waits for its `/ping`; if it exits first, its logs.
    fn try_run(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let current = std::env::var("FOOTFALL_TEST_CLICKHOUSE").as_deref() == Ok("current");
        let (bin, pre): (PathBuf, Vec<String>) = if current {
            let python = std::env::var("FOOTFALL_CHDB_PYTHON").unwrap_or_else(|_| "python3".into());
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clickhouse-current/server.py");
            let port = self.http_port.to_string();
            let data = d.join("chdb").display().to_string();
            let script = script.display().to_string();
            (
                python.into(),
                vec![script, "--port".into(), port, "--path".into(), data],
            )
        } else {
            let (bin, pre) = binary();
            let config = format!("--config-file={}", d.join("config.xml").display());
            (
                bin,
                pre.iter().map(|s| s.to_string()).chain([config]).collect(),
            )
        };
        let child = Command::new(&bin)
            .args(pre)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("log/stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Another server on the port would answer too, but this one would have exited.
            let up = self.ping();
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let log = ["log/error.log", "log/stderr.log"]
                    .map(|f| std::fs::read_to_string(d.join(f)).unwrap_or_default())
                    .join("\n");
                return Err(format!("it exited ({status}) on start:\n{log}"));
            }
            if up {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer /ping within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.http_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.ends_with("Ok.\n")
    }

    /// Kills the server (SIGKILL): a crash, as far as its clients can tell.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Runs one statement over HTTP and returns the answer's text.
    pub fn query(&self, sql: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).unwrap();
        write!(
            s,
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{sql}",
            sql.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(" 200 "), "clickhouse: {sql}\n{body}");
        body.to_owned()
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.kill();
    }
}
