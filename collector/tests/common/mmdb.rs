//! Writes a small MaxMind DB (format 2.0, IPv4, 24-bit records) for the GeoIP tests, from a
//! list of networks and their place. Only what the tests need: strings, maps, arrays and the
//! integers of the metadata.

use std::net::Ipv4Addr;

pub struct Network {
    pub net: Ipv4Addr,
    pub prefix: u8,
    pub country: &'static str,
    pub region: &'static str,
    pub city: &'static str,
}

enum Value<'a> {
    Str(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Value<'a>)>),
    Array(Vec<Value<'a>>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        _ => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | first);
    } else {
        out.push(first);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64, width: usize) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(8);
    let bytes = &bytes[skip.max(8 - width)..];
    control(out, kind, bytes.len());
    out.extend(bytes);
}

fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend(s.as_bytes());
        }
        Value::U16(n) => uint(out, 5, *n as u64, 2),
        Value::U32(n) => uint(out, 6, *n as u64, 4),
        Value::U64(n) => uint(out, 9, *n, 8),
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &Value::Str(k));
                encode(out, v);
            }
        }
        Value::Array(items) => {
            control(out, 11, items.len());
            for v in items {
                encode(out, v);
            }
        }
    }
}

fn place<'a>(n: &'a Network) -> Value<'a> {
    let names = |s: &'a str| Value::Map(vec![("en", Value::Str(s))]);
    Value::Map(vec![
        (
            "country",
            Value::Map(vec![
                ("iso_code", Value::Str(n.country)),
                ("names", names(n.country)),
            ]),
        ),
        (
            "subdivisions",
            Value::Array(vec![Value::Map(vec![
                ("iso_code", Value::Str(n.region)),
                ("names", names(n.region)),
            ])]),
        ),
        ("city", Value::Map(vec![("names", names(n.city))])),
    ])
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

pub fn write(networks: &[Network]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for n in networks {
        let offset = data.len();
        encode(&mut data, &place(n));
        let bits = u32::from(n.net);
        let mut node = 0;
        for depth in 0..n.prefix {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == n.prefix {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(i) => i,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let i = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(i);
                        i
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for pair in &nodes {
        for rec in pair {
            let v = match *rec {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(off) => count + 16 + off,
            } as u32;
            out.extend(&v.to_be_bytes()[1..]);
        }
    }
    out.extend([0u8; 16]);
    out.extend(&data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &Value::Map(vec![
            ("node_count", Value::U32(count as u32)),
            ("record_size", Value::U16(24)),
            ("ip_version", Value::U16(4)),
            ("database_type", Value::Str("Footfall-Test-City")),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_795_392_000)),
            (
                "description",
                Value::Map(vec![("en", Value::Str("Footfall test database"))]),
            ),
        ]),
    );
    out
}
