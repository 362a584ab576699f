//! User agents read as a person would name them (issue #14): a hand-picked table of modern
//! browsers on every platform (the last three versions of each), the bots that used to slip
//! through, real devices whose names merely contain "bot", TVs and consoles; then the public
//! test data that ships with the data we use (uap-core's test cases, isbot's bot and browser
//! fixtures, crawler-user-agents' instances), each with the rate it must reach. The rates are
//! printed (`cargo test --test user_agents -- --nocapture`) and written down in BENCHMARKS.md.

use footfall_collector::enrich::{browser_name, Agent, NOT_CRAWLERS};

/// (user agent, browser, OS, device)
fn browsers() -> Vec<(String, &'static str, &'static str, &'static str)> {
    let mut t = Vec::new();
    let webkit = "AppleWebKit/537.36 (KHTML, like Gecko)";
    let desktops = [
        ("Windows NT 10.0; Win64; x64", "Windows"),
        ("Macintosh; Intel Mac OS X 10_15_7", "macOS"),
        ("X11; Linux x86_64", "Linux"),
        ("X11; CrOS x86_64 16181.61.0", "Chrome OS"),
    ];
    for v in ["142", "143", "144"] {
        for (platform, os) in desktops {
            let chrome =
                format!("Mozilla/5.0 ({platform}) {webkit} Chrome/{v}.0.0.0 Safari/537.36");
            t.push((chrome.clone(), "Chrome", os, "desktop"));
            t.push((format!("{chrome} Edg/{v}.0.3595.53"), "Edge", os, "desktop"));
            t.push((
                format!("{chrome} OPR/{}.0.0.0", v.parse::<u32>().unwrap() - 18),
                "Opera",
                os,
                "desktop",
            ));
        }
        let android = "Linux; Android 10; K";
        let phone =
            format!("Mozilla/5.0 ({android}) {webkit} Chrome/{v}.0.0.0 Mobile Safari/537.36");
        let tablet = format!("Mozilla/5.0 ({android}) {webkit} Chrome/{v}.0.0.0 Safari/537.36");
        t.push((phone.clone(), "Chrome", "Android", "mobile"));
        t.push((tablet.clone(), "Chrome", "Android", "tablet"));
        t.push((
            format!("{phone} EdgA/{v}.0.3595.66"),
            "Edge",
            "Android",
            "mobile",
        ));
        t.push((
            format!("{tablet} EdgA/{v}.0.3595.66"),
            "Edge",
            "Android",
            "tablet",
        ));
        let opr = v.parse::<u32>().unwrap() - 50;
        t.push((
            format!("{phone} OPR/{opr}.1.4800.84000"),
            "Opera",
            "Android",
            "mobile",
        ));
        t.push((
            format!("{tablet} OPR/{opr}.1.4800.84000"),
            "Opera",
            "Android",
            "tablet",
        ));
        for (device, cpu, class) in [
            ("iPhone", "CPU iPhone OS 18_7 like Mac OS X", "mobile"),
            ("iPad", "CPU OS 18_7 like Mac OS X", "tablet"),
        ] {
            let ios =
                format!("Mozilla/5.0 ({device}; {cpu}) AppleWebKit/605.1.15 (KHTML, like Gecko)");
            t.push((
                format!("{ios} CriOS/{v}.0.7204.119 Mobile/15E148 Safari/604.1"),
                "Chrome",
                "iOS",
                class,
            ));
            t.push((
                format!("{ios} Version/18.0 EdgiOS/{v}.3595.61 Mobile/15E148 Safari/605.1.15"),
                "Edge",
                "iOS",
                class,
            ));
        }
    }
    for v in ["145", "146", "147"] {
        for (platform, os) in [
            ("Windows NT 10.0; Win64; x64", "Windows"),
            ("Macintosh; Intel Mac OS X 10.15", "macOS"),
            ("X11; Linux x86_64", "Linux"),
            ("X11; CrOS x86_64 16181.61.0", "Chrome OS"),
        ] {
            t.push((
                format!("Mozilla/5.0 ({platform}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"),
                "Firefox",
                os,
                "desktop",
            ));
        }
        t.push((
            format!("Mozilla/5.0 (Android 15; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0"),
            "Firefox",
            "Android",
            "mobile",
        ));
        t.push((
            format!("Mozilla/5.0 (Android 15; Tablet; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0"),
            "Firefox",
            "Android",
            "tablet",
        ));
        for (device, cpu, class) in [
            ("iPhone", "CPU iPhone OS 18_7 like Mac OS X", "mobile"),
            ("iPad", "CPU OS 18_7 like Mac OS X", "tablet"),
        ] {
            t.push((format!("Mozilla/5.0 ({device}; {cpu}) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/{v}.0 Mobile/15E148 Safari/605.1.15"), "Firefox", "iOS", class));
        }
    }
    for v in ["18.6", "26.0", "26.1"] {
        t.push((format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15"), "Safari", "macOS", "desktop"));
        t.push((format!("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1"), "Safari", "iOS", "mobile"));
        t.push((format!("Mozilla/5.0 (iPad; CPU OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1"), "Safari", "iOS", "tablet"));
    }
    for v in ["27.0", "28.0", "29.0"] {
        t.push((format!("Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-S938B) {webkit} SamsungBrowser/{v} Chrome/130.0.0.0 Mobile Safari/537.36"), "Samsung Internet", "Android", "mobile"));
        t.push((format!("Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-X920) {webkit} SamsungBrowser/{v} Chrome/130.0.0.0 Safari/537.36"), "Samsung Internet", "Android", "tablet"));
        t.push((format!("Mozilla/5.0 (Linux; Android 10; K) {webkit} SamsungBrowser/{v} Chrome/130.0.0.0 Mobile Safari/537.36"), "Samsung Internet", "Android", "mobile"));
    }
    t
}

/// Bots named in issue #14, and a few more of the kind.
const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.7499.40 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/143.0.7499.40 Safari/537.36",
    "Googlebot-Image/1.0",
    "Googlebot-Video/1.0",
    "Googlebot-News",
    "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.7499.40 Mobile Safari/537.36 (compatible; Google-InspectionTool/1.0;)",
    "Mediapartners-Google",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.7499.40 Mobile Safari/537.36 (compatible; Mediapartners-Google/2.1; +http://www.google.com/bot.html)",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.1938.76 Mobile Safari/537.36 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "WhatsApp/2.23.20.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PingdomPageSpeed/1.0 (pingbot/2.0; +http://www.pingdom.com/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/143.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "axios/1.7.9",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "Wget/1.21.4",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "okhttp/4.12.0",
    "Java/17.0.2",
    "Scrapy/2.11.0 (+https://scrapy.org)",
    "Blackboard Safeassign",
    "",
];

/// (user agent, browser, OS, device): people whose user agents look odd.
const ODD: &[(&str, &str, &str, &str)] = &[
    // Real phones and apps whose names contain "bot".
    ("Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Mobile Safari/537.36", "Chrome", "Android", "mobile"),
    ("Mozilla/5.0 (Linux; Android 12; KingKong 9 Build/SP1A.210812.016; CUBOT) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Mobile Safari/537.36", "Chrome", "Android", "mobile"),
    ("Mozilla/5.0 (Linux; Android 12; SM-G991B Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.102 Mobile Safari/537.36 fuboTV/5.61.0", "Chrome WebView", "Android", "mobile"),
    ("Mozilla/5.0 (Linux; Android 4.4.1; HTC Butterfly S Build/KRT16M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.99 Mobile Safari/537.36", "Chrome", "Android", "mobile"),
    // TVs, sticks and consoles.
    ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.102 Mobile Safari/537.36", "Chrome WebView", "Android", "other"),
    ("Mozilla/5.0 (Linux; Android 12; BRAVIA 4K VH2 Build/STT2.221222.002) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", "Chrome", "Android", "other"),
    ("Mozilla/5.0 (Linux; Android 11; Android TV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", "Chrome", "Android", "other"),
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36", "Safari", "Tizen", "other"),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager", "Chrome", "webOS", "other"),
    ("Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000 DeviceType/Chromecast", "Chrome", "Chromecast Linux", "other"),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15", "Safari", "", "other"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edge/44.18363.8131", "Edge", "Windows", "other"),
    // Web views: the app's name when the user agent gives it, else the engine's web view.
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.102 Mobile Safari/537.36", "Chrome WebView", "Android", "mobile"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/495.0.0.45.101;FBBV/681366386;FBDV/iPhone16,2;FBMD/iPhone;FBSN/iOS;FBSV/18.7;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/683153738]", "Facebook", "iOS", "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.102 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android (34/14; 480dpi; 1080x2340; samsung; SM-S918B; dm3q; qcom; en_GB; 658302155)", "Instagram", "Android", "mobile"),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 11_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E216 Blackboard/3.6.0",
        "Safari WebView",
        "iOS",
        "mobile",
    ),
    // Kindle Fire and an Android tablet that says so.
    ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/130.2.1 like Chrome/130.0.6723.102 Safari/537.36", "Amazon Silk", "Android", "tablet"),
];

#[test]
fn modern_browsers_are_named_as_a_person_would() {
    let mut wrong = Vec::new();
    let table = browsers();
    for (ua, browser, os, device) in &table {
        let a = Agent::parse_uncached(ua);
        let got = (a.browser.as_str(), a.os.as_str(), a.device.as_str());
        if got != (*browser, *os, *device) || a.bot_reason.is_some() {
            wrong.push(format!(
                "{ua}\n  want {browser} / {os} / {device}, got {got:?} {:?}",
                a.bot_reason
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
    assert!(table.len() >= 100, "the table has {} rows", table.len());
}

#[test]
fn every_named_bot_is_a_bot() {
    let missed: Vec<_> = BOTS
        .iter()
        .filter(|ua| {
            let a = Agent::parse_uncached(ua);
            a.device != "bot" || a.bot_reason.is_none()
        })
        .collect();
    assert!(missed.is_empty(), "not recognised as bots: {missed:#?}");
}

#[test]
fn odd_devices_are_classed_as_a_person_would() {
    let mut wrong = Vec::new();
    for (ua, browser, os, device) in ODD {
        let a = Agent::parse_uncached(ua);
        let got = (a.browser.as_str(), a.os.as_str(), a.device.as_str());
        if got != (*browser, *os, *device) || a.bot_reason.is_some() {
            wrong.push(format!(
                "{ua}\n  want {browser} / {os} / {device}, got {got:?} {:?}",
                a.bot_reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn data(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/ua/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn rate(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole as f64
}

#[derive(serde::Deserialize)]
struct UapCases<T> {
    test_cases: Vec<T>,
}

#[derive(serde::Deserialize)]
struct UapUa {
    user_agent_string: String,
    family: String,
}

/// uap-core's own browser test cases: our reading gives the family uap-core expects (as we
/// name it), so the vendored data and the crate agree.
#[test]
fn uap_core_browser_cases() {
    let cases: UapCases<UapUa> = serde_yaml::from_str(&data("test_ua.yaml")).unwrap();
    let mut right = 0;
    let mut bots = 0;
    let mut wrong = Vec::new();
    for c in &cases.test_cases {
        let a = Agent::parse_uncached(&c.user_agent_string);
        if a.browser == browser_name(&c.family) {
            right += 1;
        } else if a.is_bot() {
            bots += 1;
        } else {
            wrong.push((c.user_agent_string.clone(), c.family.clone(), a.browser));
        }
    }
    let n = cases.test_cases.len() - bots;
    println!(
        "uap-core test_ua.yaml: browser family right {right} of {n} ({:.2} %), {bots} cases read as bots",
        rate(right, n)
    );
    assert!(
        rate(right, n) >= 99.0,
        "{:#?}",
        &wrong[..wrong.len().min(20)]
    );
}

#[derive(serde::Deserialize)]
struct UapDevice {
    user_agent_string: String,
    family: String,
}

/// uap-core's device cases: the `Spider` ones must be bots, the others (phones, tablets,
/// desktops, TVs) must not.
#[test]
fn uap_core_spiders_and_devices() {
    let cases: UapCases<UapDevice> = serde_yaml::from_str(&data("test_device.yaml")).unwrap();
    let (mut spiders, mut caught, mut people, mut false_bots) = (0, 0, 0, Vec::new());
    for c in &cases.test_cases {
        let a = Agent::parse_uncached(&c.user_agent_string);
        if c.family == "Spider" {
            spiders += 1;
            caught += usize::from(a.is_bot());
        } else {
            people += 1;
            if a.is_bot() {
                false_bots.push((c.user_agent_string.clone(), a.bot_reason));
            }
        }
    }
    println!(
        "uap-core test_device.yaml: spiders recognised {caught} of {spiders} ({:.2} %); devices called bots {} of {people} ({:.3} %)",
        rate(caught, spiders),
        false_bots.len(),
        rate(false_bots.len(), people)
    );
    assert!(rate(caught, spiders) >= 95.0);
    assert!(
        rate(false_bots.len(), people) <= 0.5,
        "{:#?}",
        &false_bots[..false_bots.len().min(30)]
    );
}

/// isbot's fixtures: its list of bot user agents and its list of real browsers, an outside
/// opinion on both (MIT, from the isbot 0.1.3 crate).
#[test]
fn isbot_fixtures() {
    let bots: Vec<String> = data("isbot-bots.txt")
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let browsers: Vec<String> = serde_json::from_str(&data("isbot-browsers.json")).unwrap();
    let missed: Vec<_> = bots
        .iter()
        .filter(|ua| !Agent::parse_uncached(ua).is_bot())
        .collect();
    // Entries of isbot's browser list that are not people's browsers: Scrapinghub's `splash`
    // headless renderer, Firefox for Android's background fetcher (`MozacFetch`, runs no page
    // script), and `Voyager3`, which uap-core reads as the Voyager crawler.
    let disputed = |ua: &str| {
        ua.contains(" splash ") || ua.starts_with("MozacFetch/") || ua.starts_with("Voyager3/")
    };
    let browsers: Vec<String> = browsers.into_iter().filter(|ua| !disputed(ua)).collect();
    let false_bots: Vec<_> = browsers
        .iter()
        .filter_map(|ua| Agent::parse_uncached(ua).bot_reason.map(|r| (ua, r)))
        .collect();
    let caught = bots.len() - missed.len();
    println!(
        "isbot fixtures: bots recognised {caught} of {} ({:.2} %); browsers called bots {} of {} ({:.3} %)",
        bots.len(),
        rate(caught, bots.len()),
        false_bots.len(),
        browsers.len(),
        rate(false_bots.len(), browsers.len())
    );
    assert!(
        rate(caught, bots.len()) >= 95.0,
        "{:#?}",
        &missed[..missed.len().min(30)]
    );
    assert!(
        rate(false_bots.len(), browsers.len()) <= 0.1,
        "{false_bots:#?}"
    );
}

/// Every sample user agent of the crawler-user-agents list is a bot, but those of the
/// patterns we leave out (`NOT_CRAWLERS`: real devices and apps).
#[test]
fn crawler_list_instances() {
    #[derive(serde::Deserialize)]
    struct Entry {
        pattern: String,
        instances: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/crawler-user-agents/crawler-user-agents.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let all: Vec<&String> = entries
        .iter()
        .filter(|e| !NOT_CRAWLERS.contains(&e.pattern.as_str()))
        .flat_map(|e| &e.instances)
        .collect();
    let missed: Vec<_> = all
        .iter()
        .filter(|ua| !Agent::parse_uncached(ua).is_bot())
        .collect();
    println!(
        "crawler-user-agents instances: {} of {} recognised",
        all.len() - missed.len(),
        all.len()
    );
    assert!(missed.is_empty(), "{missed:#?}");
}
