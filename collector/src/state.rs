//! What every request handler shares: the configuration, the store, the rate limiter, the
//! GeoIP reader and the metrics.

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
    pub geo: Option<Geo>,
    pub metrics: Metrics,
}

impl AppState {
    /// Builds the state for `config` over `store`: opens the GeoIP database if one is named.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<AppState, String> {
        let geo = config.geoip.as_deref().map(Geo::open).transpose()?;
        Ok(AppState {
            rate: RateLimit::new(config.rate_limit),
            geo,
            metrics: Metrics::new(),
            config,
            store,
        })
    }
}
