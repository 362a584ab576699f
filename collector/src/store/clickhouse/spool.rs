//! The disk spool: batches acknowledged while ClickHouse could not take them, kept in order
//! under `DATA_DIR/spool/` until they are replayed.
//!
//! The spool is a sequence of segment files (`00000000000000000001.seg`, ...), each a run of
//! records `[length: u32 LE][crc32 of the payload: u32 LE][payload]`. A record is appended and
//! fsynced before its batch is acknowledged. A `kill -9` in the middle of an append leaves a
//! torn record at the end of the last segment: on open it fails its length or checksum check
//! and is cut off (it was never acknowledged). Segments are deleted only once every record in
//! them was inserted into ClickHouse.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A segment is closed and a new one begun past this size.
const SEGMENT_BYTES: u64 = 8 << 20;
/// Larger records are refused as corrupt when read back.
const MAX_RECORD: u32 = 256 << 20;

/// What `/metrics` shows of the spool.
#[derive(Debug, Default)]
pub struct SpoolGauges {
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
}

struct Segment {
    id: u64,
    /// Bytes of whole records in the file.
    len: u64,
    /// Records in it not yet replayed.
    records: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    /// The last segment, open for appends.
    tail: Option<File>,
    /// Where the next record to replay starts in the first segment.
    read_at: u64,
    pub gauges: Arc<SpoolGauges>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("spool: {0}")]
    Io(#[from] std::io::Error),
}

impl Spool {
    /// Opens `dir` (creating it), checks every segment and cuts off a torn tail.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            segments: VecDeque::new(),
            tail: None,
            read_at: 0,
            gauges: Arc::new(SpoolGauges::default()),
        };
        for id in ids {
            let path = spool.path(id);
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            let size = file.metadata()?.len();
            let (len, records) = scan(&mut file)?;
            if len < size {
                log::warn!(
                    "spool: {} ends in {} bytes of a torn record (a write cut short, never acknowledged); cut off",
                    path.display(),
                    size - len
                );
                file.set_len(len)?;
                file.sync_all()?;
            }
            if records == 0 {
                std::fs::remove_file(&path)?;
                continue;
            }
            spool.segments.push_back(Segment { id, len, records });
        }
        spool.update_gauges();
        Ok(spool)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Bytes held, replayed records of the first segment included.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    pub fn batches(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    fn update_gauges(&self) {
        self.gauges.bytes.store(self.bytes(), Ordering::Relaxed);
        self.gauges.batches.store(self.batches(), Ordering::Relaxed);
    }

    /// Appends one record and fsyncs it: once this returns, the record survives a crash.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let size = 8 + payload.len() as u64;
        if self.bytes() + size > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        let roll = match self.segments.back() {
            None => true,
            Some(s) => s.len >= SEGMENT_BYTES || self.tail.is_none(),
        };
        if roll {
            let id = self.segments.back().map_or(1, |s| s.id + 1);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(id))?;
            File::open(&self.dir)?.sync_all()?;
            self.tail = Some(file);
            self.segments.push_back(Segment {
                id,
                len: 0,
                records: 0,
            });
        }
        let file = self.tail.as_mut().expect("a tail segment is open");
        let mut frame = Vec::with_capacity(size as usize);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        file.write_all(&frame)?;
        file.sync_data()?;
        let seg = self.segments.back_mut().expect("a tail segment");
        seg.len += size;
        seg.records += 1;
        self.update_gauges();
        Ok(())
    }

    /// The oldest record not yet replayed.
    #[cfg(test)]
    pub fn peek(&self) -> std::io::Result<Option<Vec<u8>>> {
        let Some(seg) = self.segments.front() else {
            return Ok(None);
        };
        let mut file = File::open(self.path(seg.id))?;
        file.seek(SeekFrom::Start(self.read_at))?;
        read_record(&mut file)
    }

    /// Up to `max` records from the oldest not yet replayed, all from the first segment, in
    /// order, stopping once they hold `max_bytes`.
    pub fn peek_many(&self, max: usize, max_bytes: usize) -> std::io::Result<Vec<Vec<u8>>> {
        let Some(seg) = self.segments.front() else {
            return Ok(Vec::new());
        };
        let mut file = std::io::BufReader::new(File::open(self.path(seg.id))?);
        file.seek(SeekFrom::Start(self.read_at))?;
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max.min(seg.records as usize) && bytes < max_bytes {
            match read_record(&mut file)? {
                Some(r) => {
                    bytes += r.len();
                    out.push(r);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// The record `peek` gave is in ClickHouse: move past it, deleting its segment when that
    /// was the segment's last record.
    pub fn pop(&mut self) -> std::io::Result<()> {
        let Some(seg) = self.segments.front_mut() else {
            return Ok(());
        };
        let mut file = File::open(self.dir.join(format!("{:020}.seg", seg.id)))?;
        file.seek(SeekFrom::Start(self.read_at))?;
        let len = read_record(&mut file)?.map_or(0, |r| r.len() as u64 + 8);
        self.read_at += len;
        seg.records = seg.records.saturating_sub(1);
        if seg.records == 0 {
            let id = seg.id;
            let is_tail = self.segments.len() == 1;
            self.segments.pop_front();
            if is_tail {
                self.tail = None;
            }
            std::fs::remove_file(self.path(id))?;
            self.read_at = 0;
        }
        self.update_gauges();
        Ok(())
    }
}

/// Reads one record; `None` at the end or at a torn or corrupt record.
fn read_record(file: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 8];
    if !read_full(file, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if !read_full(file, &mut payload)? || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Fills `buf`; false if the file ends first.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match file.read(&mut buf[at..])? {
            0 => return Ok(false),
            n => at += n,
        }
    }
    Ok(true)
}

/// The length of the whole records at the start of a segment, and their number.
fn scan(file: &mut File) -> std::io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = std::io::BufReader::new(file.try_clone()?);
    let (mut len, mut records) = (0u64, 0u64);
    loop {
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match reader.read(&mut header[got..])? {
                0 => return Ok((len, records)),
                n => got += n,
            }
        }
        let n = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if n > MAX_RECORD {
            return Ok((len, records));
        }
        let mut payload = vec![0u8; n as usize];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            return Ok((len, records));
        }
        len += 8 + u64::from(n);
        records += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_across_segments_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let big = vec![7u8; 3 << 20];
        for i in 0..5u8 {
            let mut r = big.clone();
            r[0] = i;
            s.append(&r).unwrap();
        }
        assert!(s.segments.len() >= 2);
        assert_eq!(s.peek().unwrap().unwrap()[0], 0);
        s.pop().unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        // Reopening replays from the start of the first segment: record 0 comes again (the
        // insert path deduplicates it), then the rest in order.
        let mut seen = Vec::new();
        while let Some(r) = s.peek().unwrap() {
            seen.push(r[0]);
            s.pop().unwrap();
        }
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert!(s.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        s.append(b"first").unwrap();
        s.append(b"second").unwrap();
        drop(s);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.batches(), 2);
        assert_eq!(s.peek().unwrap().unwrap(), b"first");
        s.pop().unwrap();
        assert_eq!(s.peek().unwrap().unwrap(), b"second");
        s.append(b"third").unwrap();
        s.pop().unwrap();
        assert_eq!(s.peek().unwrap().unwrap(), b"third");
    }

    #[test]
    fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 20).unwrap();
        s.append(b"0123456789").unwrap();
        assert!(matches!(s.append(b"x"), Err(SpoolError::Full(20))));
    }
}
