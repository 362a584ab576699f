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

/// Anonymous ID hash → person hash of each identified anonymous ID: hashed fast (foldhash,
/// for IDs in any order), and sorted (for IDs that come in order: [`PersonMap::cursor`]).
#[derive(Default)]
pub struct PersonMap {
    hashed: std::collections::HashMap<u64, u64, foldhash::fast::RandomState>,
    /// A bit for each range of anonymous IDs (by their top bits) that holds an identified one:
    /// an ID whose bit is clear is nobody's but its own, with no look in `hashed`. About eight
    /// bits an identified ID, so an unidentified one finds its bit set one time in eight.
    ranges: Vec<u64>,
    /// How far an ID is shifted to give its bit's number.
    shift: u32,
    /// The anonymous IDs in order, and beside them their people: sorted when a cursor first
    /// asks (funnels), not for every question that reads the map.
    sorted: std::sync::OnceLock<(Vec<u64>, Vec<u64>)>,
}

impl PersonMap {
    pub fn get(&self, anon_h: &u64) -> Option<&u64> {
        let bit = anon_h.checked_shr(self.shift).unwrap_or(0) as usize;
        if self
            .ranges
            .get(bit / 64)
            .is_none_or(|w| w >> (bit % 64) & 1 == 0)
        {
            return None;
        }
        self.hashed.get(anon_h)
    }

    /// Each identified anonymous ID with its person, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &u64)> {
        self.hashed.iter()
    }

    /// A reader of people for anonymous IDs that mostly come in increasing order (as a table
    /// ordered by them sends them): each looks from where the last one was found.
    pub fn cursor(&self) -> PersonCursor<'_> {
        let (ids, people) = self.sorted.get_or_init(|| {
            let mut pairs: Vec<(u64, u64)> = self.hashed.iter().map(|(&a, &p)| (a, p)).collect();
            pairs.sort_unstable();
            pairs.into_iter().unzip()
        });
        PersonCursor { ids, people, at: 0 }
    }
}

impl FromIterator<(u64, u64)> for PersonMap {
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(pairs: I) -> PersonMap {
        let hashed: std::collections::HashMap<_, _, _> = pairs.into_iter().collect();
        // At least 64 bits, at most 2^26 (8 MiB).
        let bits = (hashed.len() * 8).next_power_of_two().clamp(64, 1 << 26);
        let shift = 64 - bits.trailing_zeros();
        let mut ranges = vec![0u64; bits / 64];
        for &anon_h in hashed.keys() {
            let bit = (anon_h >> shift) as usize;
            ranges[bit / 64] |= 1 << (bit % 64);
        }
        PersonMap {
            hashed,
            ranges,
            shift,
            sorted: Default::default(),
        }
    }
}

/// See [`PersonMap::cursor`]. At 10M events (132k identified of 529k anonymous IDs), looking
/// up the funnel's 6M rows in the hash map missed the processor's cache on most rows: half of
/// the time of reading the answer.
pub struct PersonCursor<'m> {
    ids: &'m [u64],
    people: &'m [u64],
    /// Where the last ID looked up is, or would be, in `ids`.
    at: usize,
}

impl PersonCursor<'_> {
    /// The person of `anon_h` (itself when not identified).
    pub fn person(&mut self, anon_h: u64) -> u64 {
        let keys = self.ids;
        // From where the last one was: forward in steps that double, then halving.
        let (mut low, mut high) = if keys.get(self.at).is_some_and(|&k| k <= anon_h) {
            let mut step = 1;
            let mut low = self.at;
            while low + step < keys.len() && keys[low + step] <= anon_h {
                low += step;
                step *= 2;
            }
            (low, (low + step).min(keys.len()))
        } else {
            (0, self.at.min(keys.len()))
        };
        // The first key above `anon_h` lies in (low, high]; `low` is at or below it.
        while low < high {
            let mid = low + (high - low) / 2;
            if keys[mid] <= anon_h {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        // `low` is now the first key above `anon_h`: the one before it is `anon_h` or none is.
        self.at = low.saturating_sub(1);
        match low.checked_sub(1) {
            Some(i) if keys[i] == anon_h => self.people[i],
            _ => anon_h,
        }
    }
}

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
    let mut pairs = Vec::with_capacity(rows.len() / 16);
    let mut r = rowbinary::Reader(&rows);
    while !r.0.is_empty() {
        let bad = || StoreError::ClickHouse(ChError::Answer("a person map row cut short".into()));
        let anon = u64::from_le_bytes(r.take().ok_or_else(bad)?);
        let person = u64::from_le_bytes(r.take().ok_or_else(bad)?);
        pairs.push((anon, person));
    }
    Ok(pairs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_finds_every_identified_id_and_no_other() {
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            x
        };
        for n in [0, 1, 1000, 100_000] {
            let pairs: Vec<(u64, u64)> = (0..n).map(|_| (next(), next())).collect();
            let map: PersonMap = pairs.iter().copied().collect();
            for (anon, person) in &pairs {
                assert_eq!(map.get(anon), Some(person));
            }
            // IDs beside them (in the same ranges) and far from them.
            for (anon, _) in pairs.iter().take(1000) {
                assert_eq!(map.get(&(anon ^ 1)), None);
            }
            for _ in 0..10_000 {
                assert_eq!(map.get(&next()), None);
            }
        }
        assert_eq!(PersonMap::default().get(&42), None);
    }

    #[test]
    fn the_cursor_finds_what_the_hash_map_finds_in_any_order() {
        // Identified IDs: every third number from 30 to 3,000, each its own person number.
        let map: PersonMap = (10..1000u64).map(|i| (i * 3, 1_000_000 + i)).collect();
        let expected = |a: u64| map.get(&a).copied().unwrap_or(a);
        // In order, with repeats and gaps; then backwards; then jumping about.
        let ascending: Vec<u64> = (0..3100).flat_map(|a| [a, a]).collect();
        let descending: Vec<u64> = (0..3100).rev().collect();
        let jumping: Vec<u64> = (0..5000u64).map(|i| i * 7919 % 3100).collect();
        let edges = [0, 29, 30, 2997, 2998, u64::MAX, 0, 30];
        for ids in [&ascending[..], &descending[..], &jumping[..], &edges[..]] {
            let mut cursor = map.cursor();
            for &a in ids {
                assert_eq!(cursor.person(a), expected(a), "anonymous ID {a}");
            }
        }
        let empty = PersonMap::default();
        assert_eq!(empty.cursor().person(5), 5);
    }
}
