//! Bot recognition rates on large user agent lists that are not in the repository (issue #14):
//! how many of a list of real browsers are called bots, and how many of a list of bots are
//! recognised, by the collector's reading and, for comparison, by woothee (the parser before).
//!
//! `cargo run --release -p footfall-collector --example ua_accuracy -- browsers FILE... -- bots FILE...`
//! Files hold one user agent a line, optionally in double quotes (as isbot's fixtures do).
//! `UA_SHOW=N` also prints the first N user agents of each browsers file that we call bots.

use footfall_collector::enrich::Agent;

fn read(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| l.trim().trim_matches('"').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn woothee_bot(ua: &str) -> bool {
    woothee::parser::Parser::new()
        .parse(ua)
        .is_some_and(|r| r.category == "crawler")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kind = "";
    for a in &args {
        if a == "--" {
            continue;
        }
        if a == "browsers" || a == "bots" {
            kind = a;
            continue;
        }
        let uas = read(a);
        let flagged: Vec<(&String, String)> = uas
            .iter()
            .filter_map(|ua| Agent::parse_uncached(ua).bot_reason.map(|r| (ua, r)))
            .collect();
        let ours = flagged.len();
        let show: usize = std::env::var("UA_SHOW")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if kind == "browsers" {
            for (ua, reason) in flagged.iter().take(show) {
                println!("  {reason}\t{ua}");
            }
        }
        let theirs = uas.iter().filter(|ua| woothee_bot(ua)).count();
        let pct = |n: usize| 100.0 * n as f64 / uas.len() as f64;
        println!(
            "{a}: {} user agents ({kind}); called bots: ours {ours} ({:.3} %), woothee {theirs} ({:.3} %)",
            uas.len(),
            pct(ours),
            pct(theirs)
        );
    }
}
