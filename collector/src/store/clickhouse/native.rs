//! ClickHouse's native protocol (TCP), for SELECTs whose answers run to millions of rows.
//!
//! ClickHouse 18.16 writes an HTTP answer through its HTTP library in pieces of about 4 KB:
//! at 10M events, the funnel's 78 MB answer took 19,369 `sendto` calls, 2 ns a byte, 120–170 ms
//! of the question. The native protocol writes the same blocks to the socket about 370 KB at a
//! time (211 calls). So when the store's URL names the server's native port
//! (`?native_port=9000`), [`super::http::Client::select_native`] and
//! [`super::http::Client::select_native_each`] ask here; everything else stays on HTTP.
//!
//! Only what those two need: one connection per statement (on loopback, the handshake costs
//! well under a millisecond), no compression, no external data, and the settings of every
//! statement that reads ([`super::http::READ_SETTINGS`]). The client
//! speaks revision 54213 of the protocol (servers answer a client in its own revision): its
//! blocks carry the `BlockInfo` header and its `Progress` packets three numbers, and the server
//! sends no logs, no profile events and no columns' defaults to it. Tested against ClickHouse
//! 18.16 (the tests' server); current ClickHouse is tested over HTTP only, as chDB, its engine
//! as a library, has no native port. When the port does not greet, statements go over HTTP
//! ([`super::http::Client`]).

use super::http::ChError;
use super::rowbinary::{self, leb128 as varint, string as text};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The protocol revision this client speaks (see the module's doc).
const REVISION: u64 = 54213;

/// What the client sends first: `Hello`, `Query`, `Data` (the end of the external tables).
const CLIENT_HELLO: u64 = 0;
const CLIENT_QUERY: u64 = 1;
const CLIENT_DATA: u64 = 2;

/// What the server sends.
const SERVER_HELLO: u64 = 0;
const SERVER_DATA: u64 = 1;
const SERVER_EXCEPTION: u64 = 2;
const SERVER_PROGRESS: u64 = 3;
const SERVER_END_OF_STREAM: u64 = 5;
const SERVER_PROFILE_INFO: u64 = 6;
const SERVER_TOTALS: u64 = 7;
const SERVER_EXTREMES: u64 = 8;

/// A statement longer than this goes over HTTP, which raises the server's limit on the
/// statement's size (the native protocol would need a setting for it: 256 KiB by default).
pub const LONGEST_STATEMENT: usize = 200_000;

/// Where and as whom to ask over the native protocol.
pub struct Native {
    /// `host:port`.
    pub address: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub timeout: Duration,
}

impl Native {
    /// Connects and greets the server: a connection ready for one statement. An error here
    /// (no server on the port, a refused greeting) leaves nothing asked yet.
    pub fn open(&self) -> Result<Connection, ChError> {
        let unreachable = |e: io::Error| ChError::Unreachable(format!("native protocol: {e}"));
        let stream = self.connect().map_err(unreachable)?;
        let mut to = stream.try_clone().map_err(unreachable)?;
        let mut from = BufReader::with_capacity(1 << 20, stream);
        let mut hello = Vec::new();
        varint(&mut hello, CLIENT_HELLO);
        text(&mut hello, "footfall");
        varint(&mut hello, 1);
        varint(&mut hello, 0);
        varint(&mut hello, REVISION);
        text(&mut hello, &self.database);
        text(&mut hello, &self.user);
        text(&mut hello, &self.password);
        to.write_all(&hello).map_err(unreachable)?;
        let server = match read_varint(&mut from).map_err(unreachable)? {
            SERVER_HELLO => {
                read_text(&mut from).map_err(unreachable)?;
                read_varint(&mut from).map_err(unreachable)?;
                read_varint(&mut from).map_err(unreachable)?;
                read_varint(&mut from).map_err(unreachable)?
            }
            SERVER_EXCEPTION => return Err(read_exception(&mut from).map_err(unreachable)?),
            other => {
                return Err(ChError::Answer(format!(
                    "native protocol: packet {other} for a hello"
                )))
            }
        };
        let revision = server.min(REVISION);
        // The server's time zone, sent to clients from revision 54058.
        if revision >= 54058 {
            read_text(&mut from).map_err(unreachable)?;
        }
        Ok(Connection { to, from, revision })
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in self.address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A connection greeted by the server ([`Native::open`]), for one statement.
pub struct Connection {
    to: TcpStream,
    from: BufReader<TcpStream>,
    revision: u64,
}

impl Connection {
    /// Runs a SELECT and hands each block of its answer that holds rows to `each`, as the
    /// `Native` format's bytes ([`rowbinary::native_blocks`]), as it arrives; an error from
    /// `each` stops the reading (and the connection's end stops the server).
    pub fn select_each(
        self,
        sql: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), ChError>,
    ) -> Result<(), ChError> {
        let unreachable = |e: io::Error| ChError::Unreachable(format!("native protocol: {e}"));
        let Connection {
            mut to,
            mut from,
            revision,
        } = self;
        to.write_all(&query_packet(sql, revision))
            .map_err(unreachable)?;
        let mut block = Vec::new();
        loop {
            match read_varint(&mut from).map_err(unreachable)? {
                SERVER_DATA | SERVER_TOTALS | SERVER_EXTREMES => {
                    read_text(&mut from).map_err(unreachable)?;
                    skip_block_info(&mut from).map_err(unreachable)?;
                    let read = rowbinary::read_native_block(&mut from, &mut block);
                    if !read.map_err(|e| ChError::Answer(format!("a native block: {e}")))? {
                        return Err(ChError::Answer("native protocol: cut short".into()));
                    }
                    // The first block only names the columns; HTTP's `Native` has none such.
                    if block_rows(&block) > 0 {
                        each(&block)?;
                    }
                }
                SERVER_PROGRESS => {
                    for _ in 0..3 {
                        read_varint(&mut from).map_err(unreachable)?;
                    }
                }
                SERVER_PROFILE_INFO => {
                    for _ in 0..3 {
                        read_varint(&mut from).map_err(unreachable)?;
                    }
                    read_bytes(&mut from, 1).map_err(unreachable)?;
                    read_varint(&mut from).map_err(unreachable)?;
                    read_bytes(&mut from, 1).map_err(unreachable)?;
                }
                SERVER_EXCEPTION => return Err(read_exception(&mut from).map_err(unreachable)?),
                SERVER_END_OF_STREAM => return Ok(()),
                other => {
                    return Err(ChError::Answer(format!(
                        "native protocol: a packet of kind {other}"
                    )))
                }
            }
        }
    }
}

/// The `Query` packet of `sql` (whole answer, no compression, [`super::http::READ_SETTINGS`]),
/// then the empty block that ends the external tables.
fn query_packet(sql: &str, revision: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 128);
    varint(&mut out, CLIENT_QUERY);
    text(&mut out, ""); // the query's ID: the server makes one
                        // Who asks (revision 54032 on): an initial query over TCP.
    out.push(1);
    text(&mut out, "");
    text(&mut out, "");
    text(&mut out, "0.0.0.0:0");
    out.push(1);
    text(&mut out, "");
    text(&mut out, "");
    text(&mut out, "footfall");
    varint(&mut out, 1);
    varint(&mut out, 0);
    varint(&mut out, REVISION);
    if revision >= 54060 {
        text(&mut out, ""); // the quota key
    }
    // Settings (before revision 54429: each name, then its value as the setting's type writes
    // it, a number for these), up to an empty name.
    for (name, value) in super::http::READ_SETTINGS {
        text(&mut out, name);
        varint(&mut out, value);
    }
    text(&mut out, "");
    varint(&mut out, 2); // processed to the end
    varint(&mut out, 0); // not compressed
    text(&mut out, sql);
    // No external tables: an empty block.
    varint(&mut out, CLIENT_DATA);
    text(&mut out, "");
    out.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]);
    varint(&mut out, 0);
    varint(&mut out, 0);
    out
}

/// The rows of a `Native` block read by [`rowbinary::read_native_block`].
fn block_rows(block: &[u8]) -> u64 {
    let mut at = block;
    let _columns = read_varint(&mut at);
    read_varint(&mut at).unwrap_or(0)
}

/// Skips a block's `BlockInfo`: numbered fields (1: a byte, 2: four bytes) up to a 0.
fn skip_block_info(from: &mut impl BufRead) -> io::Result<()> {
    loop {
        match read_varint(from)? {
            0 => return Ok(()),
            1 => read_bytes(from, 1)?,
            2 => read_bytes(from, 4)?,
            _ => return Err(io::ErrorKind::InvalidData.into()),
        };
    }
}

/// The server's error: its code, name and message (and those of the errors it wraps).
fn read_exception(from: &mut impl BufRead) -> io::Result<ChError> {
    let mut messages = Vec::new();
    loop {
        let code = i32::from_le_bytes(read_bytes(from, 4)?.try_into().unwrap_or_default());
        let name = read_text(from)?;
        let message = read_text(from)?;
        read_text(from)?; // the stack
        messages.push(format!("Code: {code}, e.displayText() = {name}: {message}"));
        if read_bytes(from, 1)?[0] == 0 {
            break;
        }
    }
    Ok(ChError::Server {
        status: 500,
        message: messages.join("; "),
    })
}

fn read_varint(from: &mut impl Read) -> io::Result<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        from.read_exact(&mut b)?;
        n |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(io::ErrorKind::InvalidData.into())
}

fn read_bytes(from: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    from.read_exact(&mut b)?;
    Ok(b)
}

fn read_text(from: &mut impl Read) -> io::Result<String> {
    let len = read_varint(from)?;
    // No text of the protocol's own is near this; a longer one is a stream out of step.
    if len > 1 << 24 {
        return Err(io::ErrorKind::InvalidData.into());
    }
    Ok(String::from_utf8_lossy(&read_bytes(from, len as usize)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_packet_ends_with_an_empty_block_of_no_table() {
        let p = query_packet("SELECT 1", REVISION);
        assert_eq!(p[0], CLIENT_QUERY as u8);
        let tail = [
            CLIENT_DATA as u8,
            0,
            1,
            0,
            2,
            0xff,
            0xff,
            0xff,
            0xff,
            0,
            0,
            0,
        ];
        assert!(p.ends_with(&tail), "{p:?}");
        let sql_at = p.len() - tail.len() - "SELECT 1".len();
        assert_eq!(&p[sql_at..sql_at + 8], b"SELECT 1");
        assert_eq!(p[sql_at - 1], 8, "the statement's length before it");
    }

    /// A server that answers the hello, reads the query, then sends `answer`.
    fn serve(answer: Vec<u8>) -> Native {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut hello = Vec::new();
            varint(&mut hello, SERVER_HELLO);
            text(&mut hello, "ClickHouse");
            for n in [18, 16, 54413] {
                varint(&mut hello, n);
            }
            text(&mut hello, "UTC");
            s.write_all(&hello).unwrap();
            // The client's hello and query, read until it stops sending.
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            s.write_all(&answer).unwrap();
        });
        Native {
            address,
            user: "default".into(),
            password: String::new(),
            database: "footfall".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn blocks_with_rows_come_through_and_other_packets_are_skipped() {
        let mut a = Vec::new();
        // Progress, a header block, a block of two UInt8 rows, profile info, the end.
        varint(&mut a, SERVER_PROGRESS);
        a.extend_from_slice(&[5, 40, 9]);
        for rows in [0u8, 2] {
            varint(&mut a, SERVER_DATA);
            text(&mut a, "");
            a.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]);
            a.extend_from_slice(&[1, rows]);
            text(&mut a, "x");
            text(&mut a, "UInt8");
            a.extend((0..rows).map(|r| 7 + r));
        }
        varint(&mut a, SERVER_PROFILE_INFO);
        a.extend_from_slice(&[2, 1, 2, 0, 0, 0]);
        varint(&mut a, SERVER_END_OF_STREAM);
        let mut blocks = Vec::new();
        serve(a)
            .open()
            .unwrap()
            .select_each("SELECT x", |b| {
                blocks.push(b.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(
            blocks,
            [vec![1, 2, 1, b'x', 5, b'U', b'I', b'n', b't', b'8', 7, 8]]
        );
    }

    #[test]
    fn a_server_error_is_an_error_with_its_message() {
        let mut a = Vec::new();
        varint(&mut a, SERVER_EXCEPTION);
        a.extend_from_slice(&60i32.to_le_bytes());
        text(&mut a, "DB::Exception");
        text(&mut a, "Table footfall.nope doesn't exist.");
        text(&mut a, "stack");
        a.push(0);
        let e = serve(a)
            .open()
            .and_then(|c| c.select_each("SELECT 1 FROM nope", |_| Ok(())));
        match e {
            Err(ChError::Server { message, .. }) => {
                assert!(message.contains("Code: 60"), "{message}");
                assert!(message.contains("footfall.nope doesn't exist"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A stream cut short is no answer.
        let e = serve(vec![SERVER_DATA as u8])
            .open()
            .and_then(|c| c.select_each("SELECT 1", |_| Ok(())));
        assert!(matches!(e, Err(ChError::Unreachable(_))), "{e:?}");
    }

    #[test]
    fn varints_read_back() {
        for n in [0, 1, 127, 128, 300, 54213, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(read_varint(&mut out.as_slice()).unwrap(), n);
        }
    }
}
