//! `footfall-collector`: wires configuration, store and HTTP server together.

use actix_web::{middleware::Logger, web, App, HttpServer};
use clap::Parser;
use footfall_collector::app::{self, AppState};
use footfall_collector::config::{Args, Config, ADMIN_TOKEN_FILE};
use footfall_collector::store::{ClickHouse, Sqlite, Store};
use std::io::Write;
use std::sync::Arc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    init_logging();
    let mut config = Config::load(Args::parse()).unwrap_or_else(|e| {
        eprintln!("footfall: {e}");
        std::process::exit(2);
    });
    std::fs::create_dir_all(&config.data_dir)?;
    let generated = config.ensure_admin_token()?;
    let store: Arc<dyn Store> = match &config.clickhouse {
        Some(url) => Arc::new(
            ClickHouse::open(url, &config.data_dir, config.spool_max_bytes).unwrap_or_else(|e| {
                eprintln!("footfall: cannot use ClickHouse: {e}");
                std::process::exit(1);
            }),
        ),
        None => Arc::new(
            Sqlite::open(&config.data_dir, config.durability).unwrap_or_else(|e| {
                let dir = config.data_dir.display();
                eprintln!("footfall: cannot open the store in {dir}: {e}");
                std::process::exit(1);
            }),
        ),
    };
    let state = web::Data::new(AppState::new(config.clone(), store).unwrap_or_else(|e| {
        eprintln!("footfall: {e}");
        std::process::exit(2);
    }));
    // The user agent data compiles once, before the first batch rather than during it.
    footfall_collector::enrich::warm_up();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                Logger::new("request method=%{METHOD}xi path=%U status=%s bytes=%b ms=%D peer=%a")
                    .custom_request_replace("METHOD", |r| r.method().to_string())
                    .exclude("/healthz")
                    .exclude("/metrics"),
            )
            .configure(app::configure(state.clone()))
    })
    // SIGTERM: stop accepting, let running requests finish (their commits included).
    .shutdown_timeout(30)
    .bind(config.listen)?;
    let addr = server.addrs()[0];
    let mut out = std::io::stdout().lock();
    writeln!(out, "footfall listening on http://{addr}")?;
    if generated {
        writeln!(
            out,
            "admin token (generated, kept in {}): {}",
            config.data_dir.join(ADMIN_TOKEN_FILE).display(),
            config.admin_token.as_deref().unwrap_or_default()
        )?;
    }
    out.flush()?;
    drop(out);
    server.run().await
}

/// Logs to stderr, `RUST_LOG` filtered (default `info`); one JSON object per line when
/// `FOOTFALL_LOG_FORMAT=json`.
fn init_logging() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var("FOOTFALL_LOG_FORMAT").as_deref() == Ok("json") {
        b.format(|buf, record| {
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    b.init();
}
