//! Configuration in layers: command-line flags > `FOOTFALL_*` environment > TOML file >
//! defaults. Every default is written once, here, and listed in the README.

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// Bound of the ClickHouse spool in `DATA_DIR/spool`, in bytes (1 GiB).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;

/// The collector's command line. Flags and their variables are fixed by product.md §2.
#[derive(Debug, Default, Parser)]
#[command(name = "footfall-collector", version, about = "Footfall collector")]
pub struct Args {
    /// Address to serve on; port 0 picks a free one [default: 127.0.0.1:8080]
    #[arg(long, env = "FOOTFALL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite file, the spool and generated secrets [default: ./data]
    #[arg(long, env = "FOOTFALL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of these settings, sites included
    #[arg(long, env = "FOOTFALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// A site: KEY=ORIGIN[,ORIGIN...]; repeatable (env: `;`-separated)
    #[arg(long = "site", env = "FOOTFALL_SITES", value_delimiter = ';')]
    pub sites: Vec<String>,
    /// Bearer token of the query API and dashboard [default: generated, kept in DATA_DIR/admin-token]
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Use ClickHouse at this URL instead of SQLite
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_URL")]
    pub clickhouse: Option<String>,
    /// Directory of the built SDK served at /sdk/ [default: js-wrapper/dist]
    #[arg(long, env = "FOOTFALL_SDK_DIR")]
    pub sdk_dir: Option<PathBuf>,
    /// Directory of the demo site served at /demo/ [default: examples/shop]
    #[arg(long, env = "FOOTFALL_DEMO_DIR")]
    pub demo_dir: Option<PathBuf>,
    /// Directory of the dashboard served at / [default: dashboard]
    #[arg(long, env = "FOOTFALL_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,
    /// Batches per minute allowed from one client with one key; 0 turns the limit off [default: 600]
    #[arg(long, env = "FOOTFALL_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// A proxy whose X-Forwarded-For is believed (CIDR); repeatable (env: `,`-separated)
    #[arg(
        long = "trusted-proxy",
        env = "FOOTFALL_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// MaxMind-format database (GeoLite2/GeoIP2 City or Country) for country, region and city
    #[arg(long, env = "FOOTFALL_GEOIP")]
    pub geoip: Option<PathBuf>,
    /// Keep the client IP address with each event [default: false]
    #[arg(long, env = "FOOTFALL_STORE_IP")]
    pub store_ip: Option<bool>,
    /// Largest batch in bytes, after gzip decompression [default: 1048576]
    #[arg(long, env = "FOOTFALL_MAX_BATCH_BYTES")]
    pub max_batch_bytes: Option<usize>,
    /// Largest event in bytes of JSON [default: 32768]
    #[arg(long, env = "FOOTFALL_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// What an acknowledged batch survives: `process` (a crash of the collector) or `power`
    /// (power loss too; an fsync per commit) [default: process]
    #[arg(long, env = "FOOTFALL_DURABILITY")]
    pub durability: Option<Durability>,
    /// With ClickHouse: largest size of the disk spool that holds batches while ClickHouse is
    /// unreachable; when full, batches are refused with 503 [default: 1073741824]
    #[arg(long, env = "FOOTFALL_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
}

/// What an acknowledged batch survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A crash or `kill -9` of the collector (SQLite WAL, `synchronous=NORMAL`).
    #[default]
    Process,
    /// Also power loss or an OS crash (`synchronous=FULL`: an fsync per commit).
    Power,
}

/// Size limits of ingest, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_batch_bytes: usize,
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_bytes: footfall_wire::DEFAULT_MAX_BATCH_BYTES,
            max_event_bytes: footfall_wire::DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// The TOML file: the same settings as the flags, with sites as tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub clickhouse: Option<String>,
    pub sdk_dir: Option<PathBuf>,
    pub demo_dir: Option<PathBuf>,
    pub dashboard_dir: Option<PathBuf>,
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    pub geoip: Option<PathBuf>,
    pub store_ip: Option<bool>,
    pub max_batch_bytes: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub durability: Option<Durability>,
    pub spool_max_bytes: Option<u64>,
    #[serde(default)]
    pub sites: Vec<Site>,
}

/// A site that may send events: its public write key and the origins allowed to use it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Site {
    pub key: String,
    /// `https://shop.example`, `http://localhost:*` (any port) or `*` (any origin).
    pub origins: Vec<String>,
}

impl Site {
    /// Parses `KEY=ORIGIN[,ORIGIN...]`.
    pub fn parse(spec: &str) -> Result<Site, String> {
        let (key, origins) = spec
            .split_once('=')
            .ok_or_else(|| format!("--site {spec:?}: expected KEY=ORIGIN[,ORIGIN...]"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("--site {spec:?}: the key is empty"));
        }
        let origins = origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        Ok(Site {
            key: key.to_owned(),
            origins,
        })
    }

    /// The site used when none is configured: `demo`, allowing the collector's own origin
    /// (always allowed) and any port of localhost.
    pub fn demo() -> Site {
        Site {
            key: "demo".into(),
            origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
        }
    }

    /// Whether `origin` (an `Origin` header) may send with this key.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|pattern| origin_matches(pattern, origin))
    }
}

fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" || pattern == origin {
        return true;
    }
    match pattern.strip_suffix(":*") {
        Some(base) => origin
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub sites: Vec<Site>,
    /// `None` until [`Config::ensure_admin_token`] generated or read one.
    pub admin_token: Option<String>,
    pub clickhouse: Option<String>,
    pub sdk_dir: PathBuf,
    pub demo_dir: PathBuf,
    pub dashboard_dir: PathBuf,
    /// Batches per minute per key and client; 0 is no limit.
    pub rate_limit_per_minute: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub geoip: Option<PathBuf>,
    pub store_ip: bool,
    pub limits: Limits,
    pub durability: Durability,
    /// Bytes the ClickHouse spool may hold.
    pub spool_max_bytes: u64,
}

impl Config {
    /// Resolves the layers. `Args` already holds flags over environment (clap does that).
    pub fn load(args: Args) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let sites = if !args.sites.is_empty() {
            args.sites
                .iter()
                .map(|s| Site::parse(s))
                .collect::<Result<Vec<_>, _>>()?
        } else if !file.sites.is_empty() {
            file.sites
        } else {
            vec![Site::demo()]
        };
        Ok(Config {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            sites,
            admin_token: args
                .admin_token
                .or(file.admin_token)
                .filter(|t| !t.is_empty()),
            clickhouse: args.clickhouse.or(file.clickhouse),
            sdk_dir: args
                .sdk_dir
                .or(file.sdk_dir)
                .unwrap_or_else(|| find_dir("js-wrapper/dist")),
            demo_dir: args
                .demo_dir
                .or(file.demo_dir)
                .unwrap_or_else(|| find_dir("examples/shop")),
            dashboard_dir: args
                .dashboard_dir
                .or(file.dashboard_dir)
                .unwrap_or_else(|| find_dir("dashboard")),
            rate_limit_per_minute: args
                .rate_limit
                .or(file.rate_limit)
                .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
            trusted_proxies: if args.trusted_proxies.is_empty() {
                file.trusted_proxies
            } else {
                args.trusted_proxies
            },
            geoip: args.geoip.or(file.geoip),
            store_ip: args.store_ip.or(file.store_ip).unwrap_or(false),
            limits: Limits {
                max_batch_bytes: args
                    .max_batch_bytes
                    .or(file.max_batch_bytes)
                    .unwrap_or(footfall_wire::DEFAULT_MAX_BATCH_BYTES),
                max_event_bytes: args
                    .max_event_bytes
                    .or(file.max_event_bytes)
                    .unwrap_or(footfall_wire::DEFAULT_MAX_EVENT_BYTES),
            },
            durability: args.durability.or(file.durability).unwrap_or_default(),
            spool_max_bytes: args
                .spool_max_bytes
                .or(file.spool_max_bytes)
                .unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
        })
    }

    pub fn site(&self, key: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.key == key)
    }

    /// Reads the admin token from the data dir, or generates and keeps one. Returns true when
    /// it was generated now (the caller prints it once).
    pub fn ensure_admin_token(&mut self) -> std::io::Result<bool> {
        if self.admin_token.is_some() {
            return Ok(false);
        }
        let path = self.data_dir.join(ADMIN_TOKEN_FILE);
        if let Ok(t) = std::fs::read_to_string(&path) {
            if !t.trim().is_empty() {
                self.admin_token = Some(t.trim().to_owned());
                return Ok(false);
            }
        }
        let token = format!("ff_{}", uuid::Uuid::new_v4().simple());
        write_private(&path, &token)?;
        self.admin_token = Some(token);
        Ok(true)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// `rel` under the working directory if it is there, else under the source checkout the
/// binary was built from (so `cargo run` works from any directory).
fn find_dir(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_specs_parse() {
        let s = Site::parse("shop=https://shop.example, http://localhost:*").unwrap();
        assert_eq!(s.key, "shop");
        assert_eq!(s.origins, ["https://shop.example", "http://localhost:*"]);
        assert!(Site::parse("nokey").is_err());
        assert!(Site::parse("=https://x").is_err());
    }

    #[test]
    fn origins_match_exactly_or_by_any_port() {
        let s = Site::parse("k=https://shop.example,http://localhost:*").unwrap();
        assert!(s.allows("https://shop.example"));
        assert!(!s.allows("https://shop.example.evil"));
        assert!(!s.allows("http://shop.example"));
        assert!(s.allows("http://localhost:3000"));
        assert!(!s.allows("http://localhost:"));
        assert!(!s.allows("http://localhost:80x"));
        assert!(!s.allows("http://localhost.evil:80"));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("footfall.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n\
             [[sites]]\nkey = \"shop\"\norigins = [\"https://shop.example\"]\n",
        )
        .unwrap();
        let from_file = Config::load(Args {
            config: Some(file.clone()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.sites[0].key, "shop");
        let flags = Config::load(Args {
            config: Some(file),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            sites: vec!["other=*".into()],
            ..Args::default()
        })
        .unwrap();
        assert_eq!(flags.listen.port(), 0);
        assert_eq!(flags.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(flags.sites[0].key, "other");
        let defaults = Config::load(Args::default()).unwrap();
        assert_eq!(defaults.listen.port(), 8080);
        assert_eq!(defaults.sites, [Site::demo()]);
    }

    #[test]
    fn the_admin_token_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Config::load(Args {
            data_dir: Some(dir.path().into()),
            ..Args::default()
        })
        .unwrap();
        assert!(a.ensure_admin_token().unwrap());
        let mut b = Config::load(Args {
            data_dir: Some(dir.path().into()),
            ..Args::default()
        })
        .unwrap();
        assert!(!b.ensure_admin_token().unwrap());
        assert_eq!(a.admin_token, b.admin_token);
    }
}
