//! What the collector adds to each event at ingest (product.md §2 Ingest): the user agent
//! read into browser, version, OS, device class and a bot flag with its reason; the referrer's
//! domain; the UTM parameters of the page URL.
//!
//! The user agent is read from maintained data, not from hand rules: browser, OS and device
//! model come from the uap-core regexes (`data/uap-core/`, read by the `ua-parser` crate),
//! bots from the crawler-user-agents patterns (`data/crawler-user-agents/`), the pattern list
//! of the `isbot` crate and uap-core's own `Spider` devices. `data/README.md` names the versions and how to update them. Only the
//! device *class* (tablet, TV) is ours: uap-core names devices but not their kind, so
//! [`device_class`] reads the platform tokens that say it (a few, each tested). Each distinct
//! user agent is parsed once: [`Agent::parse`] keeps the last [`CACHE_SIZE`] in an LRU cache.

use serde::Serialize;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex};

/// The uap-core regexes (browser, OS, device model), as shipped with the `ua-parser` crate.
const UAP_REGEXES: &str = include_str!("../data/uap-core/regexes.yaml");
/// The crawler-user-agents list: one pattern per crawler, with sample user agents.
const CRAWLERS: &str = include_str!("../data/crawler-user-agents/crawler-user-agents.json");

/// Longest user agent read; longer ones are cut here (at a character boundary), not refused.
pub const MAX_USER_AGENT_BYTES: usize = 1024;
/// How many distinct user agents the parse cache keeps.
pub const CACHE_SIZE: usize = 4096;

/// What one request's user agent says. The same for every event of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other` (TVs, consoles, appliances, unknown).
    pub device: String,
    /// Why the request counts as a bot (`device` is then `bot`): `"<kind>: <detail>"`, with
    /// the kind one of [`BotKind`]'s labels.
    pub bot_reason: Option<String>,
}

/// Why a user agent is a bot, in few enough kinds to be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotKind {
    /// The header is missing or blank.
    NoUserAgent,
    /// A pattern of the crawler-user-agents list matched.
    CrawlerList,
    /// The isbot crate's pattern list matched.
    IsbotList,
    /// uap-core calls the device a `Spider`.
    UapSpider,
}

impl BotKind {
    pub fn label(self) -> &'static str {
        match self {
            BotKind::NoUserAgent => "no-user-agent",
            BotKind::CrawlerList => "crawler-list",
            BotKind::IsbotList => "isbot-list",
            BotKind::UapSpider => "uap-spider",
        }
    }

    /// The kind a stored `bot_reason` starts with.
    pub fn of_reason(reason: &str) -> Option<BotKind> {
        let label = reason.split(':').next().unwrap_or_default();
        [
            BotKind::NoUserAgent,
            BotKind::CrawlerList,
            BotKind::IsbotList,
            BotKind::UapSpider,
        ]
        .into_iter()
        .find(|k| k.label() == label)
    }
}

/// The compiled data: built once per process, on first use ([`warm_up`] at start), about 27 MB.
struct Data {
    uap: ua_parser::Extractor<'static>,
    crawlers: regex::RegexSet,
    crawler_patterns: Vec<String>,
    isbot: isbot::Bots,
}

/// Patterns of the crawler-user-agents list left out because they name real devices or apps
/// that browse as people do (the HTC Butterfly phone, Slack's desktop app, the Fluid browser,
/// Viber's and Blackboard's in-app browsers; Blackboard's SafeAssign crawler is still caught
/// by isbot's `^blackboard`); each is tested in `tests/user_agents.rs`.
pub const NOT_CRAWLERS: &[&str] = &["Butterfly", "Sonic", "Fluid", "Viber", "Blackboard"];

/// isbot's `bot` at the end of a word also matches CUBOT phones (`; CUBOT)`); upstream isbot
/// excludes them with a look-behind, which Rust's regex lacks, so the pattern is swapped for
/// one that says the same.
const ISBOT_SWAP: (&str, &str) = (r"bot($|[/\);-]+)", r"(^|[^c]u|[^u])bot($|[/\);-]+)");

#[derive(serde::Deserialize)]
struct CrawlerEntry {
    pattern: String,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let regexes: ua_parser::Regexes<'static> =
        serde_yaml::from_str(UAP_REGEXES).expect("the vendored uap-core regexes.yaml parses");
    let uap = ua_parser::Extractor::try_from(regexes).expect("the uap-core regexes compile");
    let entries: Vec<CrawlerEntry> =
        serde_json::from_str(CRAWLERS).expect("the vendored crawler-user-agents.json parses");
    let crawler_patterns: Vec<String> = entries
        .into_iter()
        .map(|e| e.pattern)
        .filter(|p| !NOT_CRAWLERS.contains(&p.as_str()))
        .collect();
    let crawlers = regex::RegexSetBuilder::new(&crawler_patterns)
        .size_limit(64 << 20)
        .build()
        .expect("the crawler-user-agents patterns compile");
    Data {
        uap,
        crawlers,
        crawler_patterns,
        isbot: {
            let mut bots = isbot::Bots::default();
            bots.remove(&[ISBOT_SWAP.0]);
            bots.append(&[ISBOT_SWAP.1]);
            bots
        },
    }
});

type Cache = Mutex<lru::LruCache<Box<str>, Arc<Agent>>>;

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Mutex::new(lru::LruCache::new(
        NonZeroUsize::new(CACHE_SIZE).expect("non-zero"),
    ))
});

/// Compiles the data now rather than on the first request (the collector calls it at start).
pub fn warm_up() {
    LazyLock::force(&DATA);
}

/// The header's bytes as text: invalid UTF-8 replaced (not taken as missing), surrounding
/// space trimmed, cut to [`MAX_USER_AGENT_BYTES`].
pub fn user_agent_text(header: &[u8]) -> String {
    let text = String::from_utf8_lossy(header);
    let mut text = text.trim();
    if text.len() > MAX_USER_AGENT_BYTES {
        let mut end = MAX_USER_AGENT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = &text[..end];
    }
    text.to_owned()
}

impl Agent {
    /// The agent of a user agent string, from the cache when it was seen lately.
    pub fn parse(ua: &str) -> Arc<Agent> {
        let mut cache = CACHE.lock().expect("user agent cache");
        if let Some(a) = cache.get(ua) {
            return a.clone();
        }
        drop(cache);
        let agent = Arc::new(Agent::parse_uncached(ua));
        CACHE
            .lock()
            .expect("user agent cache")
            .put(ua.into(), agent.clone());
        agent
    }

    /// Reads a user agent without the cache.
    pub fn parse_uncached(ua: &str) -> Agent {
        let ua = ua.trim();
        if ua.is_empty() {
            return Agent::bot(BotKind::NoUserAgent, "no user agent");
        }
        let data = &*DATA;
        let (browser, os, device) = data.uap.extract(ua);
        let mut a = Agent::default();
        if let Some(b) = &browser {
            a.browser = browser_name(&b.family).to_owned();
            a.browser_version = [b.major, b.minor, b.patch, b.patch_minor]
                .into_iter()
                .map_while(|p| p)
                .collect::<Vec<_>>()
                .join(".");
        }
        if let Some(o) = &os {
            a.os = os_name(&o.os).to_owned();
        }
        if let Some(i) = data.crawlers.matches(ua).iter().next() {
            let mut bot = Agent::bot(BotKind::CrawlerList, &data.crawler_patterns[i]);
            (bot.browser, bot.browser_version, bot.os) = (a.browser, a.browser_version, a.os);
            return bot;
        }
        if data.isbot.is_bot(ua) {
            let mut bot = Agent::bot(BotKind::IsbotList, "isbot");
            (bot.browser, bot.browser_version, bot.os) = (a.browser, a.browser_version, a.os);
            return bot;
        }
        if device.as_ref().is_some_and(|d| d.device == "Spider")
            || browser.as_ref().is_some_and(|b| b.family == "Spider")
        {
            let mut bot = Agent::bot(BotKind::UapSpider, "Spider");
            (bot.browser, bot.browser_version, bot.os) = (a.browser, a.browser_version, a.os);
            return bot;
        }
        let model = device.as_ref().map(|d| d.device.as_ref()).unwrap_or("");
        a.device = device_class(ua, &a.os, model).to_owned();
        a
    }

    fn bot(kind: BotKind, detail: &str) -> Agent {
        Agent {
            device: "bot".into(),
            bot_reason: Some(format!("{}: {detail}", kind.label())),
            ..Agent::default()
        }
    }

    pub fn is_bot(&self) -> bool {
        self.bot_reason.is_some()
    }
}

/// A uap-core browser family as a person names it: the browser, whatever the device (the
/// device class says that), and web views as the app that shows them.
pub fn browser_name(family: &str) -> &str {
    match family {
        "Other" => "",
        "Chrome Mobile" | "Chrome Mobile iOS" => "Chrome",
        "Mobile Safari" => "Safari",
        "Firefox Mobile" | "Firefox iOS" => "Firefox",
        "Edge Mobile" => "Edge",
        "Opera Mobile" => "Opera",
        "Chrome Mobile WebView" => "Chrome WebView",
        "Mobile Safari UI/WKWebView" => "Safari WebView",
        other => other,
    }
}

/// A uap-core OS family, with Apple's current name for macOS.
pub fn os_name(family: &str) -> &str {
    match family {
        "Other" => "",
        "Mac OS X" => "macOS",
        "Web0S" => "webOS",
        other => other,
    }
}

/// Desktop, mobile, tablet or other (TVs, consoles, appliances, unknown), from the OS, the
/// uap-core device model and the platform tokens that say what a device is: Android's rule
/// that phones send `Mobile` and tablets do not, and the names of TV and console platforms.
pub fn device_class(ua: &str, os: &str, model: &str) -> &'static str {
    static TV_OR_CONSOLE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)smart-?tv|\bgoogletv|android ?tv|\bcrkey\b|\bAFT[A-Z]|\bbravia|hbbtv|web0s|\bnetcast|tizen[^)]*\btv\b|\broku|appletv|\bapple tv|playstation|xbox|nintendo|\btv\b|oculusbrowser|\bviera\b|philipstv|\bdtv\b|aquos",
        )
        .expect("valid regex")
    });
    static TABLET: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)\bipad\b|\btablet\b|\bkindle\b|\bsilk/|\bplaybook\b")
            .expect("valid regex")
    });
    if TV_OR_CONSOLE.is_match(ua) || model.contains("AppleTV") {
        return "other";
    }
    if model == "iPad" || TABLET.is_match(ua) {
        return "tablet";
    }
    match os {
        "Android" if !ua.contains("Mobile") => "tablet",
        "iOS" | "Android" | "Windows Phone" | "BlackBerry OS" | "KaiOS" | "Firefox OS"
        | "Symbian OS" | "Tizen" => "mobile",
        "Windows" | "macOS" | "Linux" | "Ubuntu" | "Fedora" | "Debian" | "Chrome OS"
        | "FreeBSD" | "OpenBSD" | "NetBSD" | "Mint" | "Arch Linux" | "Gentoo" | "SUSE"
        | "Red Hat" | "CentOS" | "Slackware" | "Solaris" | "Kubuntu" | "Mandriva" => "desktop",
        _ if ua.contains("Mobile") || model == "iPhone" => "mobile",
        _ => "other",
    }
}

/// The host of a referrer URL, without `www.` (empty for none or for an unparsable one).
pub fn referrer_domain(referrer: &str) -> String {
    url::Url::parse(referrer)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches("www.").to_owned())
        })
        .unwrap_or_default()
}

/// The `utm_*` parameters of a page URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub term: String,
    pub content: String,
}

impl Utm {
    pub fn parse(page_url: &str) -> Utm {
        let mut utm = Utm::default();
        let Ok(u) = url::Url::parse(page_url) else {
            return utm;
        };
        for (k, v) in u.query_pairs() {
            let slot = match k.as_ref() {
                "utm_source" => &mut utm.source,
                "utm_medium" => &mut utm.medium,
                "utm_campaign" => &mut utm.campaign,
                "utm_term" => &mut utm.term,
                "utm_content" => &mut utm.content,
                _ => continue,
            };
            *slot = v.chars().take(200).collect();
        }
        utm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_say_why() {
        let google = Agent::parse(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        );
        assert_eq!(google.device, "bot");
        assert_eq!(
            google.bot_reason.as_deref(),
            Some("crawler-list: Googlebot\\/")
        );
        let empty = Agent::parse("  ");
        assert_eq!(
            empty.bot_reason.as_deref(),
            Some("no-user-agent: no user agent")
        );
        assert_eq!(
            BotKind::of_reason(google.bot_reason.as_deref().unwrap()),
            Some(BotKind::CrawlerList)
        );
    }

    #[test]
    fn the_cache_answers_the_same() {
        let ua = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let first = Agent::parse(ua);
        let second = Agent::parse(ua);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, Agent::parse_uncached(ua));
        assert_eq!(first.os, "Chrome OS");
    }

    #[test]
    fn odd_headers_are_read_not_dropped() {
        assert_eq!(
            user_agent_text(b"  Mozilla/5.0 caf\xc3\xa9  "),
            "Mozilla/5.0 café"
        );
        assert_eq!(user_agent_text(b"Mozilla/5.0 \xff"), "Mozilla/5.0 \u{fffd}");
        let long = "é".repeat(6000);
        let cut = user_agent_text(long.as_bytes());
        assert_eq!(cut.len(), MAX_USER_AGENT_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn referrers_and_utm() {
        assert_eq!(
            referrer_domain("https://www.google.com/search?q=x"),
            "google.com"
        );
        assert_eq!(referrer_domain(""), "");
        assert_eq!(referrer_domain("not a url"), "");
        let utm = Utm::parse(
            "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=nov%20sale&x=1",
        );
        assert_eq!(utm.source, "news");
        assert_eq!(utm.medium, "email");
        assert_eq!(utm.campaign, "nov sale");
        assert_eq!(utm.term, "");
    }
}
