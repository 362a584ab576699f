//! A minimal HTTP/1.1 client over `std::net`, enough for the tests that drive a real
//! collector process: one request per connection, the status and the body back.
// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    /// The status line and headers as sent, header names in lower case.
    pub head: String,
    pub body: String,
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_ascii_lowercase(), b.to_owned()))
        .unwrap_or_default();
    // Chunked bodies: the tests only read JSON answers, which actix sends with a length.
    Ok(Response { status, head, body })
}

pub fn post_batch(addr: SocketAddr, body: &str) -> std::io::Result<Response> {
    request(
        addr,
        "POST",
        "/v1/batch",
        &[("Content-Type", "text/plain")],
        body,
    )
}

/// A batch as a person's browser sends it: requests without a user agent are a bot's, which
/// the answers leave out.
pub fn post_as_person(addr: SocketAddr, body: &str) -> std::io::Result<Response> {
    request(
        addr,
        "POST",
        "/v1/batch",
        &[("Content-Type", "text/plain"), ("User-Agent", BROWSER)],
        body,
    )
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/131.0.0.0 Safari/537.36";
