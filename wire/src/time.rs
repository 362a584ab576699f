//! RFC 3339 timestamps in UTC with milliseconds (`2026-11-23T10:00:01.004Z`), written without
//! `core::fmt` so the SDK can use it cheaply.

#[allow(unused_imports)]
use crate::prelude::*;

/// Days since 1970-01-01 to a (year, month, day) civil date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = String::new();
    crate::json::write_u64(&mut digits, n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

/// Formats milliseconds since the Unix epoch, e.g. `2026-11-23T10:00:01.004Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) as u64;
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(24);
    push_padded(&mut s, y.max(0) as u64, 4);
    s.push('-');
    push_padded(&mut s, m.into(), 2);
    s.push('-');
    push_padded(&mut s, d.into(), 2);
    s.push('T');
    push_padded(&mut s, rem / 3_600_000, 2);
    s.push(':');
    push_padded(&mut s, rem / 60_000 % 60, 2);
    s.push(':');
    push_padded(&mut s, rem / 1000 % 60, 2);
    s.push('.');
    push_padded(&mut s, rem % 1000, 3);
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::rfc3339_millis;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_795_428_001_004),
            "2026-11-23T10:00:01.004Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
