//! The writer thread: group commits of event inserts, each with the session and person
//! rollups it implies ([`super::rollups`]), and other writes one at a time.

use super::super::*;
use super::rollups::Rollup;
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

pub(super) struct Job {
    pub events: Vec<StoredEvent>,
    pub reply: oneshot::Sender<InsertOutcome>,
}

/// Work for the writer thread: event inserts (committed in groups) or another write, run on
/// its own in a transaction of its own.
pub(super) enum Work {
    Insert(Job),
    Other(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Largest number of events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;

pub(super) fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Work>, pending: &AtomicUsize) {
    let mut next = None;
    while let Some(work) = next.take().or_else(|| rx.recv().ok()) {
        let first = match work {
            Work::Other(f) => {
                f(&mut conn);
                continue;
            }
            Work::Insert(job) => job,
        };
        let mut jobs = vec![first];
        let mut n = jobs[0].events.len();
        while n < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(Work::Insert(job)) => {
                    n += job.events.len();
                    jobs.push(job);
                }
                Ok(other) => {
                    // Runs after this group, in the order it came.
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &jobs);
        pending.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                log::error!("sqlite commit of {n} events failed: {e}");
                for job in jobs {
                    let _ = job.reply.send(Err(match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
                        _ => StoreError::Write(e.to_string()),
                    }));
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Vec<bool>>> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut rollup = Rollup::default();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, site, type, name, time_ms, client_ms,
             server_ms, anonymous_id, user_id, session_id, seq, url, path, title, referrer,
             screen, viewport, language, timezone, sdk, props, traits, browser, browser_version,
             os, device, bot_reason, referrer_domain, utm_source, utm_medium, utm_campaign,
             utm_term, utm_content, country, region, city, ip)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,
                     ?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36,?37)",
        )?;
        let mut alias = tx.prepare_cached(
            "INSERT OR IGNORE INTO aliases (anonymous_id, user_id) VALUES (?1, ?2)",
        )?;
        for job in jobs {
            let mut stored = Vec::with_capacity(job.events.len());
            for e in &job.events {
                let n = insert.execute(params![
                    e.event_id,
                    e.site,
                    e.kind,
                    e.name,
                    e.time_ms,
                    e.client_ms,
                    e.server_ms,
                    e.anonymous_id,
                    e.user_id,
                    e.session_id,
                    e.seq,
                    e.url,
                    e.path,
                    e.title,
                    e.referrer,
                    e.screen,
                    e.viewport,
                    e.language,
                    e.timezone,
                    e.sdk,
                    e.props,
                    e.traits,
                    e.browser,
                    e.browser_version,
                    e.os,
                    e.device,
                    e.bot_reason,
                    e.referrer_domain,
                    e.utm_source,
                    e.utm_medium,
                    e.utm_campaign,
                    e.utm_term,
                    e.utm_content,
                    e.country,
                    e.region,
                    e.city,
                    e.ip,
                ])?;
                if n == 1 {
                    if let Some(user) = &e.user_id {
                        if alias.execute(params![e.anonymous_id, user])? == 1 {
                            rollup.join(&tx, &e.anonymous_id, user)?;
                        }
                    }
                    rollup.add(&tx, e)?;
                }
                stored.push(n == 1);
            }
            outcomes.push(stored);
        }
    }
    rollup.flush(&tx)?;
    tx.commit()?;
    Ok(outcomes)
}
