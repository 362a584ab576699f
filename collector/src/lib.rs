//! The Footfall collector as a library, so that tests build the same app as `main`.

pub mod access;
pub mod app;
pub mod assets;
pub mod client;
pub mod config;
pub mod enrich;
pub mod error;
pub mod geo;
pub mod ingest;
pub mod metrics;
pub mod query;
pub mod session;
pub mod state;
pub mod store;
pub mod tokens;
