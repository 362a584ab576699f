//! Who sent a request: the client's IP address (believing `X-Forwarded-For` only from trusted
//! proxies) and the per-key, per-client rate limit.

use actix_web::HttpRequest;
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// rightmost address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// Requests per minute per (key, client address), with a burst of a tenth of a minute's worth
/// (at least 20): batches per site key, so a page sending its queue in several beacons at hide
/// is not cut, and query API calls (one key), so a dashboard page's calls at once are not.
pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<(String, Option<IpAddr>)>>,
    checks: AtomicU64,
}

impl RateLimit {
    /// `per_minute = 0` turns the limit off.
    pub fn new(per_minute: u32) -> RateLimit {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new((per_minute / 10).max(20)).expect("at least 20");
            governor::RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        RateLimit {
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(seconds to wait)` when this client is over its rate.
    pub fn check(&self, key: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Forget idle clients now and then, so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(key.to_owned(), ip))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                wait.as_secs() + 1
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(x) = xff {
            r = r.insert_header(("x-forwarded-for", x));
        }
        r.to_http_request()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |peer, xff| client_ip(&req(peer, xff), &trusted).unwrap().to_string();
        assert_eq!(
            ip("203.0.113.9:1", Some("1.2.3.4")),
            "203.0.113.9",
            "spoofed"
        );
        assert_eq!(ip("10.0.0.2:1", Some("1.2.3.4")), "1.2.3.4");
        assert_eq!(
            ip("10.0.0.2:1", Some("6.6.6.6, 1.2.3.4, 10.0.0.7")),
            "1.2.3.4"
        );
        assert_eq!(ip("10.0.0.2:1", None), "10.0.0.2");
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_says_how_long_to_wait() {
        let limit = RateLimit::new(60);
        let ip = Some("1.2.3.4".parse().unwrap());
        for _ in 0..20 {
            assert!(limit.check("k", ip).is_ok());
        }
        let wait = limit.check("k", ip).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(limit.check("other", ip).is_ok(), "per key");
        assert!(
            limit.check("k", Some("5.6.7.8".parse().unwrap())).is_ok(),
            "per client"
        );
        assert!(RateLimit::new(0).check("k", ip).is_ok(), "0 is off");
    }
}
