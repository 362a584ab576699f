//! What the collector adds to each event at ingest (product.md §2 Ingest): the user agent
//! read into browser, version, OS, device type and a bot flag with its reason (woothee's
//! parser); the referrer's domain; the UTM parameters of the page URL.

use serde::Serialize;

/// What one request's user agent says. The same for every event of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    /// `desktop`, `mobile`, `bot` or `other`.
    pub device: String,
    /// Why the request counts as a bot, if it does.
    pub bot_reason: Option<String>,
}

impl Agent {
    pub fn parse(ua: &str) -> Agent {
        let mut a = Agent::default();
        if ua.trim().is_empty() {
            a.device = "bot".into();
            a.bot_reason = Some("no user agent".into());
            return a;
        }
        match woothee::parser::Parser::new().parse(ua) {
            Some(r) => {
                a.browser = known(r.name);
                a.browser_version = known(r.version);
                a.os = known(r.os);
                a.device = match r.category {
                    "pc" => "desktop",
                    "smartphone" | "mobilephone" => "mobile",
                    "crawler" => "bot",
                    _ => "other",
                }
                .into();
                if r.category == "crawler" {
                    a.bot_reason = Some(format!("crawler: {}", r.name));
                }
            }
            None => a.device = "other".into(),
        }
        if a.bot_reason.is_none() {
            let lower = ua.to_ascii_lowercase();
            if let Some(m) = [
                "headless",
                "bot",
                "spider",
                "crawl",
                "lighthouse",
                "phantomjs",
            ]
            .iter()
            .find(|m| lower.contains(*m))
            {
                a.bot_reason = Some(format!("user agent contains {m:?}"));
            }
        }
        a
    }

    pub fn is_bot(&self) -> bool {
        self.bot_reason.is_some()
    }
}

fn known(s: &str) -> String {
    if s == "UNKNOWN" {
        String::new()
    } else {
        s.to_owned()
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
    fn browsers_and_devices() {
        let chrome = Agent::parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(chrome.browser, "Chrome");
        assert_eq!(chrome.browser_version, "120.0.0.0");
        assert_eq!(chrome.os, "Windows 10");
        assert_eq!(chrome.device, "desktop");
        assert!(!chrome.is_bot());
        let iphone = Agent::parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.browser, "Safari");
        assert_eq!(iphone.os, "iPhone");
        assert_eq!(iphone.device, "mobile");
    }

    #[test]
    fn bots_say_why() {
        let google = Agent::parse(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        );
        assert_eq!(google.device, "bot");
        assert!(google.bot_reason.unwrap().starts_with("crawler"));
        let headless = Agent::parse("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36");
        assert_eq!(
            headless.bot_reason.as_deref(),
            Some("user agent contains \"headless\"")
        );
        assert!(Agent::parse("").is_bot());
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
