//! Configuration in layers: defaults < TOML file < `FOOTFALL_*` environment < command-line flags.
//!
//! A setting is written in two places: a field of [`Config`] (its default in
//! `Config::default`) and a flag of [`Args`] (clap reads the flag and its variable). The layers
//! are merged in one pass ([`Config::load`]): each is turned into a JSON object and laid over the
//! one below, key by key, and the result is read back into a `Config`, so the TOML file takes
//! exactly the fields' names and refuses unknown ones.

use clap::Parser;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The collector's command line. Flags and their variables are fixed by product.md §2; every
/// flag is `None` unless given, so the layers below it show through.
#[derive(Debug, Default, Parser, Serialize)]
#[command(name = "footfall-collector", version, about = "Footfall collector")]
pub struct Args {
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
    /// Address to serve on; port 0 picks a free one [default: 127.0.0.1:8080]
    #[arg(long, env = "FOOTFALL_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite file, the spool and generated secrets [default: ./data]
    #[arg(long, env = "FOOTFALL_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of these settings, sites included
    #[arg(long, env = "FOOTFALL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// A site: KEY=ORIGIN[,ORIGIN...]; repeatable (env: `;`-separated)
    #[arg(long = "site", env = "FOOTFALL_SITES", value_delimiter = ';')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    /// Bearer token of the query API and dashboard [default: generated, kept in DATA_DIR/admin-token]
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Use ClickHouse at this URL instead of SQLite
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<String>,
    /// Serve the SDK from this directory instead of the copy built into the binary (development)
    #[arg(long, env = "FOOTFALL_SDK_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk_dir: Option<PathBuf>,
    /// Serve the demo shop from this directory instead of the built-in copy (development)
    #[arg(long, env = "FOOTFALL_DEMO_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo_dir: Option<PathBuf>,
    /// Serve the dashboard from this directory instead of the built-in copy (development)
    #[arg(long, env = "FOOTFALL_DASHBOARD_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_dir: Option<PathBuf>,
    /// Batches per minute allowed from one client with one key; 0 turns the limit off [default: 600]
    #[arg(long, env = "FOOTFALL_RATE_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Query API requests per minute allowed from one client address (the dashboard's too); 0 turns the limit off [default: 1200]
    #[arg(long, env = "FOOTFALL_QUERY_RATE_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_rate_limit: Option<u32>,
    /// A proxy whose X-Forwarded-For is believed (CIDR); repeatable (env: `,`-separated)
    #[arg(
        long = "trusted-proxy",
        env = "FOOTFALL_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpNet>,
    /// MaxMind-format database (GeoLite2/GeoIP2 City or Country) for country, region and city
    #[arg(long, env = "FOOTFALL_GEOIP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geoip: Option<PathBuf>,
    /// Keep the client IP address with each event [default: false]
    #[arg(long, env = "FOOTFALL_STORE_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ip: Option<bool>,
    /// Largest batch in bytes, after gzip decompression [default: 1048576]
    #[arg(long, env = "FOOTFALL_MAX_BATCH_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_bytes: Option<usize>,
    /// Largest event in bytes of JSON [default: 32768]
    #[arg(long, env = "FOOTFALL_MAX_EVENT_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_bytes: Option<usize>,
    /// What an acknowledged batch survives: `process` (a crash of the collector) or `power`
    /// (power loss too; an fsync per commit) [default: process]
    #[arg(long, env = "FOOTFALL_DURABILITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// With ClickHouse: largest size of the disk spool that holds batches while ClickHouse is
    /// unreachable; when full, batches are refused with 503 [default: 1073741824]
    #[arg(long, env = "FOOTFALL_SPOOL_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_max_bytes: Option<u64>,
}

/// What the binary does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write a consistent copy of the SQLite store to FILE while a collector may be running on
    /// it; a collector started on a data dir holding the copy as `footfall.sqlite` answers as the
    /// original did
    Backup {
        /// Where the copy goes (it must not exist yet)
        file: PathBuf,
        /// The data dir of the store to copy [default: the collector's, ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// What an acknowledged batch survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
        Config::default().limits()
    }
}

/// A site that may send events: its public write key and the origins allowed to use it. In the
/// TOML file a table (`key`, `origins`); on the command line `KEY=ORIGIN[,ORIGIN...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SiteSpec")]
pub struct Site {
    pub key: String,
    /// `https://shop.example`, `http://localhost:*` (any port) or `*` (any origin).
    pub origins: Vec<String>,
}

/// How a site is written: a table, or a flag's `KEY=ORIGIN,...`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SiteSpec {
    Flag(String),
    Table { key: String, origins: Vec<String> },
}

impl TryFrom<SiteSpec> for Site {
    type Error = String;
    fn try_from(spec: SiteSpec) -> Result<Site, String> {
        match spec {
            SiteSpec::Flag(s) => Site::parse(&s),
            SiteSpec::Table { key, origins } => Ok(Site { key, origins }),
        }
    }
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

/// Every setting, resolved. The TOML file takes these names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub sites: Vec<Site>,
    /// `None` until [`Config::ensure_admin_token`] generated or read one.
    pub admin_token: Option<String>,
    pub clickhouse: Option<String>,
    /// `None`: the files built into the binary.
    pub sdk_dir: Option<PathBuf>,
    pub demo_dir: Option<PathBuf>,
    pub dashboard_dir: Option<PathBuf>,
    /// Batches per minute per key and client; 0 is no limit.
    pub rate_limit: u32,
    /// Query API requests per minute per client address; 0 is no limit.
    pub query_rate_limit: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub geoip: Option<PathBuf>,
    pub store_ip: bool,
    pub max_batch_bytes: usize,
    pub max_event_bytes: usize,
    pub durability: Durability,
    /// Bytes the ClickHouse spool may hold.
    pub spool_max_bytes: u64,
}

impl Default for Config {
    /// Every default, written once (and listed in the README's table).
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: "./data".into(),
            sites: vec![Site::demo()],
            admin_token: None,
            clickhouse: None,
            sdk_dir: None,
            demo_dir: None,
            dashboard_dir: None,
            rate_limit: 600,
            query_rate_limit: 1200,
            trusted_proxies: Vec::new(),
            geoip: None,
            store_ip: false,
            max_batch_bytes: footfall_wire::DEFAULT_MAX_BATCH_BYTES,
            max_event_bytes: footfall_wire::DEFAULT_MAX_EVENT_BYTES,
            durability: Durability::Process,
            // 1 GiB.
            spool_max_bytes: 1 << 30,
        }
    }
}

impl Config {
    /// Merges the layers: defaults, then the TOML file named by `--config`, then flags and
    /// their variables (`Args` holds both; clap puts flags over variables).
    pub fn load(args: Args) -> Result<Config, String> {
        let mut merged = to_object(&Config::default())?;
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let file: Map<String, Value> =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            merged.extend(file);
        }
        merged.extend(to_object(&args)?);
        let mut config: Config =
            serde_json::from_value(Value::Object(merged)).map_err(|e| match &args.config {
                Some(path) => format!("{}: {e}", path.display()),
                None => e.to_string(),
            })?;
        config.admin_token = config.admin_token.filter(|t| !t.is_empty());
        Ok(config)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_batch_bytes: self.max_batch_bytes,
            max_event_bytes: self.max_event_bytes,
        }
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

/// One layer as a JSON object (its unset fields left out).
fn to_object(layer: &impl Serialize) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(layer).map_err(|e| e.to_string())? {
        Value::Object(map) => Ok(map),
        other => Err(format!("a configuration layer is not an object: {other}")),
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
    fn the_file_takes_the_fields_names_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("footfall.toml");
        std::fs::write(
            &file,
            "rate_limit = 0\nstore_ip = true\nmax_batch_bytes = 2048\n\
             trusted_proxies = [\"10.0.0.0/8\"]\ndurability = \"power\"\n\
             [[sites]]\nkey = \"a\"\norigins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let c = Config::load(Args {
            config: Some(file.clone()),
            max_event_bytes: Some(100),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(c.rate_limit, 0);
        assert!(c.store_ip);
        assert_eq!(c.limits().max_batch_bytes, 2048);
        assert_eq!(c.limits().max_event_bytes, 100);
        assert_eq!(c.trusted_proxies.len(), 1);
        assert_eq!(c.durability, Durability::Power);
        assert_eq!(c.spool_max_bytes, Config::default().spool_max_bytes);
        assert!(c.site("a").unwrap().allows("https://a.example"));
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let e = Config::load(Args {
            config: Some(file),
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.contains("listen_port"), "{e}");
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
