//! The options of `footfall.init` (product.md §1, "Options and defaults"). Every default is
//! written here once.

#[allow(unused_imports)]
use crate::prelude::*;

/// How sessions are shared between the tabs of one browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    /// All tabs of the site share one session through the cookie.
    Browser,
    /// Each tab has its own session; closing the tab ends it.
    Tab,
}

/// Where the anonymous ID and the session state live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// First-party cookies (localStorage when cookies are blocked).
    Cookie,
    LocalStorage,
    /// Nothing kept: a new visitor on every page load.
    Memory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The site's public write key.
    pub key: String,
    /// Collector base URL, without a trailing slash.
    pub endpoint: String,
    pub session_timeout_ms: i64,
    pub max_session_duration_ms: i64,
    pub session_scope: SessionScope,
    /// `None` means the scope's default: off for `Browser`, on for `Tab`.
    pub end_session_on_hidden: Option<bool>,
    pub hidden_grace_ms: i64,
    pub auto_pageviews: bool,
    pub track_engagement: bool,
    pub batch_size: usize,
    pub flush_interval_ms: i64,
    pub persistence: Persistence,
    /// Empty for `auto`: the widest domain that accepts the cookie.
    pub cookie_domain: String,
    pub respect_dnt: bool,
}

pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;
pub const DEFAULT_MAX_SESSION_DURATION_MS: i64 = 24 * 60 * 60 * 1000;
pub const DEFAULT_BATCH_SIZE: usize = 20;
pub const DEFAULT_FLUSH_INTERVAL_MS: i64 = 5_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            key: String::new(),
            endpoint: String::new(),
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            max_session_duration_ms: DEFAULT_MAX_SESSION_DURATION_MS,
            session_scope: SessionScope::Browser,
            end_session_on_hidden: None,
            hidden_grace_ms: 0,
            auto_pageviews: true,
            track_engagement: true,
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            persistence: Persistence::Cookie,
            cookie_domain: String::new(),
            respect_dnt: false,
        }
    }
}

impl Options {
    /// Whether a tab hidden longer than `hidden_grace_ms` ends its session.
    pub fn ends_session_on_hidden(&self) -> bool {
        self.end_session_on_hidden
            .unwrap_or(self.session_scope == SessionScope::Tab)
    }

    /// Brings out-of-range numbers back to something that works (a zero timeout would make
    /// every event its own session; a zero batch would never fill).
    pub fn sanitize(&mut self) {
        self.session_timeout_ms = self.session_timeout_ms.max(1_000);
        self.max_session_duration_ms = self.max_session_duration_ms.max(self.session_timeout_ms);
        self.hidden_grace_ms = self.hidden_grace_ms.max(0);
        self.batch_size = self.batch_size.clamp(1, 500);
        self.flush_interval_ms = self.flush_interval_ms.max(100);
        // By bytes: `String::pop` and `trim_end_matches` bring Unicode decoding into the wasm.
        // SAFETY: only a last byte that is `/` (ASCII) goes: the rest stays whole UTF-8.
        let bytes = unsafe { self.endpoint.as_mut_vec() };
        while bytes.last() == Some(&b'/') {
            bytes.pop();
        }
    }
}

/// The option names in the order the host lists their values (`options` in `host/api.js`).
/// The first five take strings only.
pub const NAMES: [&str; 14] = [
    "key",
    "endpoint",
    "sessionScope",
    "persistence",
    "cookieDomain",
    "sessionTimeout",
    "maxSessionDuration",
    "endSessionOnHidden",
    "hiddenGrace",
    "autoPageviews",
    "trackEngagement",
    "batchSize",
    "flushInterval",
    "respectDnt",
];

/// Marks an option not given (or of a type it does not take) in the host's list.
pub const ABSENT: &str = "\u{1}";

/// A whole number (integer parsing only: Rust's float parser would add kilobytes to the wasm;
/// the host trims the text).
fn num(v: Option<&str>) -> Option<i64> {
    footfall_wire::json::read_i64(v?)
}

/// `true`, `false`, or present with no value (a bare `data-` attribute) for true.
fn flag(v: Option<&str>) -> Option<bool> {
    match v? {
        "true" | "" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

impl Options {
    /// The options from the host's list: one value a line, in the order of [`NAMES`], each a
    /// string as given (numbers as whole numbers, booleans as `true`/`false`) or [`ABSENT`].
    /// What does not parse falls back to its default.
    pub fn parse(text: &str) -> Options {
        let mut values = crate::platform::fields(text, b'\n').map(|v| (v != ABSENT).then_some(v));
        let mut next = || values.next().flatten();
        let key = crate::platform::owned(next().unwrap_or_default());
        let endpoint = crate::platform::owned(next().unwrap_or_default());
        let session_scope = match next() {
            Some("tab") => SessionScope::Tab,
            _ => SessionScope::Browser,
        };
        let persistence = match next() {
            Some("localStorage") => Persistence::LocalStorage,
            Some("memory") => Persistence::Memory,
            _ => Persistence::Cookie,
        };
        let cookie_domain = crate::platform::owned(next().unwrap_or_default());
        Options {
            key,
            endpoint,
            session_scope,
            persistence,
            cookie_domain,
            // The defaults of `Options::default`, written out (no default `Options` built and
            // dropped).
            session_timeout_ms: num(next()).unwrap_or(DEFAULT_SESSION_TIMEOUT_MS),
            max_session_duration_ms: num(next()).unwrap_or(DEFAULT_MAX_SESSION_DURATION_MS),
            end_session_on_hidden: flag(next()),
            hidden_grace_ms: num(next()).unwrap_or(0),
            auto_pageviews: flag(next()).unwrap_or(true),
            track_engagement: flag(next()).unwrap_or(true),
            batch_size: num(next()).unwrap_or(DEFAULT_BATCH_SIZE as i64).max(1) as usize,
            flush_interval_ms: num(next()).unwrap_or(DEFAULT_FLUSH_INTERVAL_MS),
            respect_dnt: flag(next()).unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let o = Options::default();
        assert_eq!(o.session_timeout_ms, 1_800_000);
        assert_eq!(o.max_session_duration_ms, 86_400_000);
        assert_eq!(o.batch_size, 20);
        assert_eq!(o.flush_interval_ms, 5_000);
        assert!(!o.ends_session_on_hidden());
        let tab = Options {
            session_scope: SessionScope::Tab,
            ..Options::default()
        };
        assert!(tab.ends_session_on_hidden());
    }

    #[test]
    fn sanitize_fixes_nonsense() {
        let mut o = Options {
            session_timeout_ms: 0,
            max_session_duration_ms: 5,
            batch_size: 0,
            endpoint: "https://c.example//".into(),
            ..Options::default()
        };
        o.sanitize();
        assert_eq!(o.session_timeout_ms, 1_000);
        assert_eq!(o.max_session_duration_ms, 1_000);
        assert_eq!(o.batch_size, 1);
        assert_eq!(o.endpoint, "https://c.example");
    }

    fn list(pairs: &[(&str, &str)]) -> String {
        let values: Vec<&str> = NAMES
            .iter()
            .map(|n| {
                pairs
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or(ABSENT, |(_, v)| *v)
            })
            .collect();
        values.join("\n")
    }

    #[test]
    fn options_come_from_the_hosts_list() {
        // As the script tag gives them: every value a string.
        let o = Options::parse(&list(&[
            ("key", "shop"),
            ("endpoint", "https://c.example"),
            ("sessionTimeout", "600000"),
            ("sessionScope", "tab"),
            ("autoPageviews", "false"),
            ("endSessionOnHidden", ""),
            ("batchSize", "5"),
            ("persistence", "memory"),
        ]));
        assert_eq!(o.key, "shop");
        assert_eq!(o.endpoint, "https://c.example");
        assert_eq!(o.session_timeout_ms, 600_000);
        assert_eq!(o.session_scope, SessionScope::Tab);
        assert_eq!(o.persistence, Persistence::Memory);
        assert!(!o.auto_pageviews);
        assert_eq!(o.end_session_on_hidden, Some(true));
        assert_eq!(o.batch_size, 5);
        assert_eq!(o.cookie_domain, "");
        assert_eq!(
            o.max_session_duration_ms,
            Options::default().max_session_duration_ms
        );
    }

    #[test]
    fn nonsense_options_fall_back_to_defaults() {
        let o = Options::parse(&list(&[
            ("sessionTimeout", "soon"),
            ("batchSize", "NaN"),
            ("flushInterval", "Infinity"),
            ("autoPageviews", "1"),
            ("respectDnt", "yes"),
        ]));
        assert_eq!(o.key, "");
        assert_eq!(o.session_timeout_ms, Options::default().session_timeout_ms);
        assert_eq!(o.batch_size, Options::default().batch_size);
        assert_eq!(o.flush_interval_ms, DEFAULT_FLUSH_INTERVAL_MS);
        assert!(o.auto_pageviews);
        assert!(!o.respect_dnt);
        // Not even a list: every default, as `Options::default` has them.
        assert_eq!(Options::parse(""), Options::default());
        assert_eq!(Options::parse("x").batch_size, DEFAULT_BATCH_SIZE);
    }
}
