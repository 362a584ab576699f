//! `footfall-collector`: wires configuration, store and HTTP server together, or runs one of
//! the commands beside serving (`backup`).

use actix_web::{middleware::Logger, web, App, HttpServer};
use clap::Parser;
use footfall_collector::app;
use footfall_collector::config::{Args, Command, Config, ADMIN_TOKEN_FILE};
use footfall_collector::state::AppState;
use footfall_collector::store;
use std::io::Write;

fn main() {
    init_logging();
    let mut args = Args::parse();
    let command = args.command.take();
    let config = Config::load(args).unwrap_or_else(|e| fail(2, &e));
    let result = match command {
        Some(Command::Backup { file, data_dir }) => backup(&config, data_dir, &file),
        None => actix_web::rt::System::new()
            .block_on(serve(config))
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        fail(1, &e);
    }
}

fn fail(code: i32, why: &str) -> ! {
    eprintln!("footfall: {why}");
    std::process::exit(code);
}

async fn serve(mut config: Config) -> std::io::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let generated = config.ensure_admin_token()?;
    let store = store::open(&config).unwrap_or_else(|e| fail(1, &e));
    let state =
        web::Data::new(AppState::new(config.clone(), store).unwrap_or_else(|e| fail(2, &e)));
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

/// `footfall-collector backup FILE [--data-dir DIR]`: a consistent copy of the SQLite store,
/// with progress on stderr.
fn backup(
    config: &Config,
    data_dir: Option<std::path::PathBuf>,
    file: &std::path::Path,
) -> Result<(), String> {
    if let Some(url) = &config.clickhouse {
        let host = url.rsplit('@').next().unwrap_or(url);
        return Err(format!(
            "this collector stores its events in ClickHouse ({host}), not in SQLite: back up \
             ClickHouse with its own tools (BACKUP … TO on current releases, or a copy of the \
             `footfall` database's table parts with clickhouse-backup or `ALTER TABLE … FREEZE`). \
             The data dir's spool/ holds only batches not yet written to ClickHouse; a collector \
             replays them on start, so keep it with the collector, not in a backup."
        ));
    }
    let dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
    let t = std::time::Instant::now();
    let copied = store::Sqlite::backup(&dir, file, |done, total| {
        eprintln!(
            "backup: {:.1} of {:.1} MB ({} %)",
            done as f64 / 1e6,
            total as f64 / 1e6,
            done * 100 / total.max(1)
        );
    })
    .map_err(|e| format!("backup of {} failed: {e}", dir.display()))?;
    eprintln!(
        "backup: {} written, {:.1} MB in {:.1} s",
        file.display(),
        copied as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
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
