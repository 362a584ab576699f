//! The options of `footfall.init` (product.md §1, "Options and defaults"). Every default is
//! written here once.

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
    /// `None` is `auto`: the widest domain that accepts the cookie.
    pub cookie_domain: Option<String>,
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
            cookie_domain: None,
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
    pub fn sanitized(mut self) -> Self {
        self.session_timeout_ms = self.session_timeout_ms.max(1_000);
        self.max_session_duration_ms = self.max_session_duration_ms.max(self.session_timeout_ms);
        self.hidden_grace_ms = self.hidden_grace_ms.max(0);
        self.batch_size = self.batch_size.clamp(1, 500);
        self.flush_interval_ms = self.flush_interval_ms.max(100);
        while self.endpoint.ends_with('/') {
            self.endpoint.pop();
        }
        self
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
    fn sanitized_fixes_nonsense() {
        let o = Options {
            session_timeout_ms: 0,
            max_session_duration_ms: 5,
            batch_size: 0,
            endpoint: "https://c.example//".into(),
            ..Options::default()
        }
        .sanitized();
        assert_eq!(o.session_timeout_ms, 1_000);
        assert_eq!(o.max_session_duration_ms, 1_000);
        assert_eq!(o.batch_size, 1);
        assert_eq!(o.endpoint, "https://c.example");
    }
}
