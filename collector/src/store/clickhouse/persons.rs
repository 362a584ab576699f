//! The person map: the person of each identified anonymous ID (the user ID of its earliest
//! alias), kept as a `Join` table that queries read with `joinGet`, so that no query groups
//! `aliases` and hash-joins its events with the result any more.
//!
//! A map is a snapshot of `aliases`, named after the table's active parts
//! (`persons_<hash of their names>`). Parts never change once written, and every insert,
//! merge and mutation (an erase) replaces some, so the map named after the parts of now holds
//! exactly what grouping `aliases` now gives. The first query after a change builds the new
//! map, whichever collector runs it: into a table of its own, then renamed to the snapshot's
//! name if the parts did not change during the read (else it reads again). Two collectors
//! building one snapshot build the same map; the second rename fails and is dropped. The
//! newest few maps are kept (a query that has just looked up its map's name must still find
//! it), older ones dropped.
//!
//! `joinGet` on ClickHouse 18.16 takes the table's name without its database (it reads
//! `'db.t'` as one name), so queries run with the store's database as the current one.
//!
//! Migration: none needed. The maps are derived data, built on first use from `aliases` on a
//! database of any age; dropping every `persons_*` table is always safe.

use super::http::{lit, ChError, Client};
use super::{rowbinary, StoreError};
use std::sync::Arc;

/// Anonymous ID hash → person hash, hashed fast (foldhash: looked up once per event row).
pub type PersonMap = std::collections::HashMap<u64, u64, foldhash::fast::RandomState>;

/// Maps kept besides the current one, for the queries that already named them.
const KEEP: usize = 3;

/// Tries at reading `aliases` while no part changed, before building from a moving table.
const TRIES: usize = 5;

/// The name of the person map of `aliases` as it is now (built if missing), with columns
/// `alias_user` (the user ID, `''` for an anonymous ID never identified) and `alias_h` (its
/// `cityHash64`, 0 for none), keyed by `cityHash64(anonymous_id)`.
pub fn current(c: &Client) -> Result<String, StoreError> {
    let mut last = String::new();
    for _ in 0..TRIES {
        let (name, ready) = snapshot(c)?;
        if ready {
            return Ok(name);
        }
        if build(c, &name)? {
            drop_old(c, &name)?;
            return Ok(name);
        }
        last = name;
    }
    // `aliases` changed under every read: the last snapshot read is as good as the next.
    Ok(last)
}

/// The name of the map of `aliases` now, and whether it exists.
fn snapshot(c: &Client) -> Result<(String, bool), StoreError> {
    let db = lit(&c.database);
    let (rows, _) = c.select(&format!(
        "SELECT map, map IN (SELECT name FROM system.tables WHERE database = {db}) AS ready
         FROM (SELECT concat('persons_', lower(hex(cityHash64(arrayStringConcat(
                          arraySort(groupArray(name)), ','))))) AS map
               FROM system.parts
               WHERE database = {db} AND table = 'aliases' AND active)"
    ))?;
    let row = rows.first().ok_or_else(|| {
        StoreError::ClickHouse(ChError::Answer("no row for the person map".into()))
    })?;
    let name = row["map"].as_str().unwrap_or_default().to_owned();
    Ok((name, row["ready"].as_u64() == Some(1)))
}

/// Builds the map `name` stands for; false if `aliases` changed while it was read.
fn build(c: &Client, name: &str) -> Result<bool, StoreError> {
    let db = &c.database;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let building = format!("building_{name}_{}_{nanos}", std::process::id());
    c.execute(&format!(
        "CREATE TABLE {db}.{building} (anon_h UInt64, alias_user String, alias_h UInt64)
         ENGINE = Join(ANY, LEFT, anon_h)"
    ))?;
    let built = c
        .execute(&format!(
            "INSERT INTO {db}.{building}
             SELECT cityHash64(anonymous_id), alias_user, cityHash64(alias_user)
             FROM (SELECT anonymous_id, argMin(user_id, (time_ms, event_id)) AS alias_user
                   FROM {db}.aliases GROUP BY anonymous_id)"
        ))
        .map_err(StoreError::from)
        .and_then(|_| snapshot(c));
    let keep = match built {
        Ok((now, false)) if now == name => c
            .execute(&format!("RENAME TABLE {db}.{building} TO {db}.{name}"))
            .is_ok(),
        Ok((now, _)) if now == name => false, // another collector built it meanwhile
        Ok(_) => {
            c.execute(&format!("DROP TABLE IF EXISTS {db}.{building}"))?;
            return Ok(false);
        }
        Err(e) => {
            let _ = c.execute(&format!("DROP TABLE IF EXISTS {db}.{building}"));
            return Err(e);
        }
    };
    if !keep {
        c.execute(&format!("DROP TABLE IF EXISTS {db}.{building}"))?;
    }
    Ok(true)
}

/// Drops the maps older than the newest [`KEEP`] besides `current`, and builds left behind by
/// a collector that stopped during one (an hour old).
fn drop_old(c: &Client, current: &str) -> Result<(), StoreError> {
    let db = &c.database;
    let (rows, _) = c.select(&format!(
        "SELECT name FROM system.tables
         WHERE database = {dbl} AND name != {cur}
           AND (startsWith(name, 'persons_') OR (startsWith(name, 'building_persons_')
                AND metadata_modification_time < now() - 3600))
         ORDER BY startsWith(name, 'building_'), metadata_modification_time DESC, name",
        dbl = lit(db),
        cur = lit(current),
    ))?;
    let mut kept = 0;
    for r in rows {
        let name = r["name"].as_str().unwrap_or_default();
        if name.starts_with("persons_") && kept < KEEP {
            kept += 1;
            continue;
        }
        c.execute(&format!("DROP TABLE IF EXISTS {db}.{name}"))?;
    }
    Ok(())
}

/// `joinGet` of column `col` of map `map` for the hashed anonymous ID `anon_h`.
pub fn get(map: &str, col: &str, anon_h: &str) -> String {
    format!("joinGet('{map}', '{col}', {anon_h})")
}

/// The whole of map `map` as anonymous ID hash → person hash (`alias_h`), for answers that
/// look people up in the collector instead of with a `joinGet` per row: a hash missing here
/// (an ID never identified) is its own person, as [`get`] with `if(alias_h = 0, …)` has it.
/// The client keeps the last map read: a map's name stands for one content (the parts of
/// `aliases`, which never change, that it was built from), so while `aliases` does not
/// change, questions share one copy (at 10M events: 128k IDs, 10–25 ms a read).
pub fn read(c: &Client, map: &str) -> Result<Arc<PersonMap>, StoreError> {
    let kept = || c.persons.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((name, persons)) = &*kept() {
        if name == map {
            return Ok(persons.clone());
        }
    }
    let persons = Arc::new(read_whole(c, map)?);
    *kept() = Some((map.to_owned(), persons.clone()));
    Ok(persons)
}

/// [`read`] from ClickHouse.
fn read_whole(c: &Client, map: &str) -> Result<PersonMap, StoreError> {
    let rows = c.select_binary(&format!(
        "SELECT anon_h, alias_h FROM {}.{map} WHERE alias_h != 0",
        c.database
    ))?;
    let mut out = PersonMap::with_capacity_and_hasher(rows.len() / 16, Default::default());
    let mut r = rowbinary::Reader(&rows);
    while !r.0.is_empty() {
        let bad = || StoreError::ClickHouse(ChError::Answer("a person map row cut short".into()));
        let anon = u64::from_le_bytes(r.take().ok_or_else(bad)?);
        let person = u64::from_le_bytes(r.take().ok_or_else(bad)?);
        out.insert(anon, person);
    }
    Ok(out)
}
