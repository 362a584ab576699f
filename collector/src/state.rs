//! What every request handler shares: the configuration, the store, the rate limiter, the
//! GeoIP reader, the metrics and who sent wrong tokens.

use crate::access;
use crate::client::RateLimit;
use crate::config::Config;
use crate::geo::Geo;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub rate: RateLimit,
    /// Query API requests per client address (issue #19).
    pub query_rate: RateLimit,
    pub geo: Option<Geo>,
    pub metrics: Metrics,
    /// Wrong bearer tokens per client address (issue #19).
    pub auth_failures: access::Failures,
    /// When this collector last recorded each API token's use.
    pub token_uses: access::Uses,
}

impl AppState {
    /// Builds the state for `config` over `store`: opens the GeoIP database if one is named.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<AppState, String> {
        let geo = config.geoip.as_deref().map(Geo::open).transpose()?;
        Ok(AppState {
            rate: RateLimit::new(config.rate_limit),
            query_rate: RateLimit::new(config.query_rate_limit),
            geo,
            metrics: Metrics::new(),
            auth_failures: access::Failures::default(),
            token_uses: access::Uses::default(),
            config,
            store,
        })
    }
}
