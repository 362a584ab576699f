//! ClickHouse's HTTP interface: one blocking client, SQL in the request body, rows out as JSON,
//! rows in as JSON or `RowBinary` (the ingest path), tables sent along with a query as external
//! data, and the escaping of every value that goes into SQL text.
//!
//! The URL names the server, the credentials and the database:
//! `http://[USER[:PASSWORD]@]HOST:PORT[/DATABASE][?database=DATABASE][&native_port=PORT]`
//! (default database `footfall`, default user ClickHouse's `default`; with `native_port`,
//! answers of millions of rows come over ClickHouse's native protocol: [`super::native`]). Credentials go in an `Authorization: Basic`
//! header, never into the query string (which ClickHouse logs). Only plain `http` is
//! supported; reach a remote server over a private network or a TLS tunnel.

use std::time::Duration;

/// Why a request to ClickHouse failed.
#[derive(Debug, thiserror::Error)]
pub enum ChError {
    /// Could not talk to the server at all (refused, reset, timed out).
    #[error("clickhouse unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error.
    #[error("clickhouse answered {status}: {message}")]
    Server { status: u16, message: String },
    /// The answer was not what the query asked for.
    #[error("clickhouse answer unreadable: {0}")]
    Answer(String),
}

impl ChError {
    /// Whether the server could not be reached (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ChError::Unreachable(_))
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port/` with the settings every request carries.
    endpoint: String,
    authorization: Option<String>,
    /// Checked to be an identifier; safe to put in SQL as is.
    pub database: String,
    /// The person map last read whole ([`super::persons::read`]), by its name.
    pub(super) persons:
        std::sync::Mutex<Option<(String, std::sync::Arc<super::persons::PersonMap>)>>,
    /// The labels (event name and page) that user paths last numbered, with their hashes
    /// ([`super::journey_sql::paths`]).
    pub(super) labels: std::sync::Mutex<super::journey_sql::Labels>,
    /// The server's native protocol, when the URL names its port: large answers come that way.
    native: Option<super::native::Native>,
    /// Whether the native port failed to greet at the last try (so the log says it once).
    native_down: std::sync::atomic::AtomicBool,
}

/// Settings sent with every request: 64-bit integers as JSON numbers, room for the long
/// `IN (...)` lists of the insert path, and [`READ_SETTINGS`].
const SETTINGS: &str = "output_format_json_quote_64bit_integers=0&max_query_size=67108864";

/// Settings of every statement that reads: the blocks read are kept decompressed in the
/// server's uncompressed cache (as large as its `uncompressed_cache_size`: 8 GiB in the
/// packaged configuration, none if it is 0), for statements that read up to 16M rows.
pub(super) const READ_SETTINGS: [(&str, u64); 2] = [
    ("use_uncompressed_cache", 1),
    ("merge_tree_max_rows_to_use_cache", 1 << 24),
];

impl Client {
    /// A client for the server named by `url` whose requests give up after `timeout` (the
    /// writer's is short, so a hung server sends batches to the spool soon).
    pub fn new(url: &str, timeout: Duration) -> Result<Client, String> {
        let u = url::Url::parse(url).map_err(|e| format!("clickhouse URL {url:?}: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!(
                "clickhouse URL {url:?}: only http:// is supported (use a TLS tunnel for a remote server)"
            ));
        }
        let host = u
            .host_str()
            .ok_or_else(|| format!("clickhouse URL {url:?}: no host"))?;
        let port = u.port().unwrap_or(8123);
        let from_path = u.path().trim_matches('/').to_owned();
        let from_query = u
            .query_pairs()
            .find(|(k, _)| k == "database")
            .map(|(_, v)| v.into_owned());
        let database = from_query
            .or((!from_path.is_empty()).then_some(from_path))
            .unwrap_or_else(|| "footfall".to_owned());
        if database.is_empty()
            || !database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "clickhouse URL {url:?}: the database name must be letters, digits and _"
            ));
        }
        let user = percent_decode(u.username());
        let password = percent_decode(u.password().unwrap_or_default());
        let authorization = (!u.username().is_empty())
            .then(|| format!("Basic {}", base64(format!("{user}:{password}").as_bytes())));
        let native_port = match u.query_pairs().find(|(k, _)| k == "native_port") {
            Some((_, v)) => Some(v.parse::<u16>().map_err(|_| {
                format!("clickhouse URL {url:?}: native_port={v} is not a port number")
            })?),
            None => None,
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        let native = native_port.map(|p| super::native::Native {
            address: format!("{host}:{p}"),
            user: if user.is_empty() {
                "default".into()
            } else {
                user
            },
            password,
            database: database.clone(),
            timeout,
        });
        Ok(Client {
            agent,
            endpoint: READ_SETTINGS.iter().fold(
                format!("http://{host}:{port}/?{SETTINGS}"),
                |url, (name, value)| format!("{url}&{name}={value}"),
            ),
            authorization,
            database,
            persons: Default::default(),
            labels: Default::default(),
            native,
            native_down: Default::default(),
        })
    }

    fn post(&self, url: &str, body: Vec<u8>) -> Result<String, ChError> {
        self.post_typed(url, None, body)
    }

    fn post_typed(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, ChError> {
        String::from_utf8(self.post_bytes(url, content_type, body)?)
            .map_err(|e| ChError::Unreachable(e.to_string()))
    }

    fn post_bytes(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, ChError> {
        self.send(url, content_type, &body)?
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| ChError::Unreachable(e.to_string()))
    }

    /// Posts `body` to `url` and gives the answer to read, or the server's error.
    fn send(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ureq::http::Response<ureq::Body>, ChError> {
        let mut req = self.agent.post(url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        if let Some(t) = content_type {
            req = req.header("Content-Type", t);
        }
        let mut resp = req
            .send(body)
            .map_err(|e| ChError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map_err(|e| ChError::Unreachable(e.to_string()))?;
            return Err(ChError::Server {
                status,
                message: String::from_utf8_lossy(&bytes).trim().to_owned(),
            });
        }
        Ok(resp)
    }

    /// Runs a statement (DDL, ALTER, INSERT ... SELECT) and returns its raw answer.
    pub fn execute(&self, sql: &str) -> Result<String, ChError> {
        self.post(&self.endpoint, sql.as_bytes().to_vec())
    }

    /// Inserts rows, one JSON object per line, into `table` in one block.
    pub fn insert(&self, table: &str, rows: Vec<u8>) -> Result<(), ChError> {
        let query = format!("INSERT INTO {}.{table} FORMAT JSONEachRow", self.database);
        let url = format!("{}&query={}", self.endpoint, percent_encode(&query));
        self.post(&url, rows).map(drop)
    }

    /// Inserts rows in `RowBinary` into `table`'s `columns` in one block.
    pub fn insert_binary(&self, table: &str, columns: &str, rows: Vec<u8>) -> Result<(), ChError> {
        let query = format!(
            "INSERT INTO {}.{table} ({columns}) FORMAT RowBinary",
            self.database
        );
        let url = format!("{}&query={}", self.endpoint, percent_encode(&query));
        self.post(&url, rows).map(drop)
    }

    /// Runs a SELECT that reads `data` as a table of its own (ClickHouse's external data: sent
    /// beside the query, never parsed as SQL, so a large set costs no query text), and returns
    /// its rows as [`Client::select`] does.
    pub fn select_with(
        &self,
        sql: &str,
        data: &External,
    ) -> Result<Vec<serde_json::Value>, ChError> {
        let text = self.post_with(&format!("{sql}\nFORMAT JSON"), data)?;
        Ok(rows_of(&text)?.0)
    }

    /// Runs a statement that answers nothing (an `INSERT … SELECT`) with `data` beside it,
    /// as [`Client::select_with`] does.
    pub fn execute_with(&self, sql: &str, data: &External) -> Result<(), ChError> {
        self.post_with(sql, data).map(drop)
    }

    /// Posts `sql` with `data` as the external table it names, in `RowBinary`.
    fn post_with(&self, sql: &str, data: &External) -> Result<String, ChError> {
        let boundary = loop {
            let mut salt = [0u8; 12];
            getrandom::fill(&mut salt).map_err(|e| ChError::Unreachable(e.to_string()))?;
            let b: String = salt.iter().map(|b| format!("{b:02x}")).collect();
            let b = format!("footfall-{b}");
            if !data.rows.windows(b.len()).any(|w| w == b.as_bytes()) {
                break b;
            }
        };
        let name = data.name;
        let mut body = Vec::with_capacity(data.rows.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data.rows);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        // In the store's database, as `select` is (`joinGet` names its table without one).
        let url = format!(
            "{}&database={}&query={}&{name}_structure={}&{name}_format=RowBinary",
            self.endpoint,
            self.database,
            percent_encode(sql),
            percent_encode(data.structure),
        );
        self.post_typed(
            &url,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
        )
    }

    /// Runs a SELECT and returns its answer as `TabSeparated` text (a row a line, fields
    /// split by tabs, text escaped as [`unescape`] reads it): for answers of millions of rows,
    /// which JSON makes several times dearer to write and read.
    pub fn select_tsv(&self, sql: &str) -> Result<String, ChError> {
        let url = format!("{}&database={}", self.endpoint, self.database);
        self.post(&url, format!("{sql}\nFORMAT TabSeparated").into_bytes())
    }

    /// Runs a SELECT and returns its answer in `RowBinary` (each row's values one after
    /// another: numbers little-endian, text as its length in LEB128 then its bytes): for
    /// answers of millions of rows, which even `TabSeparated` costs the server seconds to
    /// write as text.
    pub fn select_binary(&self, sql: &str) -> Result<Vec<u8>, ChError> {
        let url = format!("{}&database={}", self.endpoint, self.database);
        self.post_bytes(&url, None, format!("{sql}\nFORMAT RowBinary").into_bytes())
    }

    /// Runs a SELECT and returns its answer in `Native` (column by column, block by block:
    /// see [`super::rowbinary::native_blocks`]): for answers of millions of narrow rows, which
    /// the server writes in about two thirds of `RowBinary`'s time.
    pub fn select_native(&self, sql: &str) -> Result<Vec<u8>, ChError> {
        if let Some(native) = self.native_for(sql) {
            let mut all = Vec::new();
            native.select_each(sql, |block| {
                all.extend_from_slice(block);
                Ok(())
            })?;
            return Ok(all);
        }
        let url = format!("{}&database={}", self.endpoint, self.database);
        self.post_bytes(&url, None, format!("{sql}\nFORMAT Native").into_bytes())
    }

    /// Runs a SELECT in `Native` and hands each block to `each` as it arrives (its bytes, for
    /// [`super::rowbinary::native_blocks`]), so that the answer is read while the server
    /// still works on the rest; an error from `each` stops the reading.
    pub fn select_native_each(
        &self,
        sql: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), ChError>,
    ) -> Result<(), ChError> {
        if let Some(native) = self.native_for(sql) {
            return native.select_each(sql, each);
        }
        let url = format!("{}&database={}", self.endpoint, self.database);
        let mut resp = self.send(&url, None, format!("{sql}\nFORMAT Native").as_bytes())?;
        let mut body = std::io::BufReader::with_capacity(1 << 16, resp.body_mut().as_reader());
        let mut block = Vec::new();
        // A server that fails after its first bytes writes its error text into the answer:
        // that reads as a block cut short or of no known type.
        let unread = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                ChError::Answer(format!("a Native block unreadable: {e}"))
            }
            _ => ChError::Unreachable(e.to_string()),
        };
        while super::rowbinary::read_native_block(&mut body, &mut block).map_err(unread)? {
            each(&block)?;
        }
        Ok(())
    }

    /// The native protocol for `sql`, if the URL names its port and `sql` is not too long for
    /// it ([`super::native::LONGEST_STATEMENT`]).
    /// A connection over the native protocol for `sql`, if the URL names its port, `sql` is
    /// not too long for it ([`super::native::LONGEST_STATEMENT`]) and the server greets on
    /// that port. When it does not (a wrong port, a firewall), the statement goes over HTTP
    /// instead and the log says why, once until the port answers again.
    fn native_for(&self, sql: &str) -> Option<super::native::Connection> {
        use std::sync::atomic::Ordering;
        let native = self.native.as_ref()?;
        if sql.len() > super::native::LONGEST_STATEMENT {
            return None;
        }
        match native.open() {
            Ok(connection) => {
                if self.native_down.swap(false, Ordering::Relaxed) {
                    log::info!(
                        "clickhouse: the native port {} answers again",
                        native.address
                    );
                }
                Some(connection)
            }
            Err(e) => {
                if !self.native_down.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "clickhouse: no native protocol on {} ({e}); large answers come over HTTP",
                        native.address
                    );
                }
                None
            }
        }
    }

    /// Runs a SELECT and returns its rows (and the `WITH TOTALS` row, if any).
    pub fn select(
        &self,
        sql: &str,
    ) -> Result<(Vec<serde_json::Value>, Option<serde_json::Value>), ChError> {
        // In the store's database: `joinGet` names its table without one.
        let url = format!("{}&database={}", self.endpoint, self.database);
        let text = self.post(&url, format!("{sql}\nFORMAT JSON").into_bytes())?;
        rows_of(&text)
    }
}

/// A table sent with a query as external data: its name in the query, its columns
/// (`name Type, ...`) and its rows in `RowBinary`.
pub struct External<'a> {
    pub name: &'a str,
    pub structure: &'a str,
    pub rows: Vec<u8>,
}

/// The rows (and the `WITH TOTALS` row, if any) of an answer in `FORMAT JSON`.
fn rows_of(text: &str) -> Result<(Vec<serde_json::Value>, Option<serde_json::Value>), ChError> {
    let mut answer: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(200).collect();
        ChError::Answer(format!("{e} in {start:?}"))
    })?;
    let rows = match answer.get_mut("data").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(rows)) => rows,
        _ => return Err(ChError::Answer("no data".into())),
    };
    Ok((rows, answer.get_mut("totals").map(serde_json::Value::take)))
}

/// A field of a `TabSeparated` answer as the text it stands for: ClickHouse writes a
/// backslash before `\b \f \n \r \t \0` (as `b f n r t 0`) and before `\\` and quotes.
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A ClickHouse string literal: quoted, with backslash, quote and control bytes escaped.
/// ClickHouse reads every other byte (UTF-8 included) as itself.
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `(lit, lit, ...)` for `IN`; `('')` when empty, which matches nothing real.
pub fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let parts: Vec<String> = items.into_iter().map(|s| lit(s)).collect();
    if parts.is_empty() {
        return "('\\0none')".to_owned();
    }
    format!("({})", parts.join(","))
}

/// A float literal ClickHouse reads back exactly (Rust's shortest round-trip form, in
/// scientific notation so it is never taken for an integer out of range).
pub fn float(n: f64) -> String {
    format!("{n:e}")
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_clickhouse_reads_specially() {
        assert_eq!(lit("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(lit("x\ny\0\u{1}é"), "'x\\ny\\0\\x01é'");
    }

    #[test]
    fn tab_separated_fields_unescape_to_their_text() {
        assert_eq!(unescape("plain é"), "plain é");
        assert_eq!(
            unescape(r"\$pageview\0/p\ta\nb\\c\'d\b\f\r"),
            "$pageview\0/p\ta\nb\\c'd\u{8}\u{c}\r"
        );
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn urls_name_server_credentials_and_database() {
        let c = Client::new("http://u:p%40ss@127.0.0.1:9999/analytics", T).unwrap();
        assert_eq!(c.database, "analytics");
        assert_eq!(c.authorization.as_deref(), Some("Basic dTpwQHNz"));
        assert!(c.endpoint.starts_with("http://127.0.0.1:9999/?"));
        let c = Client::new("http://localhost:8123/?database=ff", T).unwrap();
        assert_eq!(c.database, "ff");
        assert_eq!(Client::new("http://h", T).unwrap().database, "footfall");
        assert!(Client::new("https://h", T).is_err());
        assert!(Client::new("http://h/bad-name", T).is_err());
        assert!(c.native.is_none());
        let c = Client::new("http://u:p%40ss@127.0.0.1:8123/ff?native_port=9000", T).unwrap();
        let n = c.native.as_ref().unwrap();
        assert_eq!(
            (n.address.as_str(), n.user.as_str()),
            ("127.0.0.1:9000", "u")
        );
        assert_eq!((n.password.as_str(), n.database.as_str()), ("p@ss", "ff"));
        let c = Client::new("http://[::1]:8123/?native_port=9000", T).unwrap();
        assert_eq!(c.native.as_ref().unwrap().address, "[::1]:9000");
        assert_eq!(c.native.as_ref().unwrap().user, "default");
        assert!(Client::new("http://h/?native_port=nine", T).is_err());
    }
}
