//! Time buckets of a series: hours, and days, weeks and months in a time zone. Both stores and
//! the journeys use them.

use super::Interval;

/// The first instant of a local date in `tz`, as UTC milliseconds (midnight, or later when a
/// DST gap swallows it).
pub fn day_start(d: chrono::NaiveDate, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    (0..24)
        .find_map(|h| {
            tz.from_local_datetime(&d.and_hms_opt(h, 0, 0)?)
                .earliest()
                .map(|t| t.timestamp_millis())
        })
        .unwrap_or_default()
}

/// Every bucket start, as UTC milliseconds, from the one holding `from_ms` up to `to_ms`
/// (exclusive): hours, or local midnights of days, Mondays and first days of months in `tz`
/// (so a day in a zone with daylight saving time may last 23 or 25 hours). At most 5,000.
pub fn bucket_starts(from_ms: i64, to_ms: i64, interval: Interval, tz: chrono_tz::Tz) -> Vec<i64> {
    use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
    const HOUR: i64 = 3_600_000;
    if interval == Interval::Hour {
        let first = from_ms.div_euclid(HOUR) * HOUR;
        return (0..5_000)
            .map(|i| first + i * HOUR)
            .take_while(|&t| t < to_ms)
            .collect();
    }
    let local = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive()
    };
    let start_of = |d: NaiveDate| day_start(d, tz);
    let mut d = local(from_ms);
    d = match interval {
        Interval::Week => d - Duration::days(d.weekday().num_days_from_monday().into()),
        Interval::Month => d.with_day(1).unwrap_or(d),
        _ => d,
    };
    let mut out = Vec::new();
    while out.len() < 5_000 {
        let t = start_of(d);
        if t >= to_ms {
            break;
        }
        out.push(t);
        d = match interval {
            Interval::Day | Interval::Hour => d + Duration::days(1),
            Interval::Week => d + Duration::days(7),
            Interval::Month => d
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(d + Duration::days(31)),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn days_follow_the_zone_through_daylight_saving_time() {
        let paris = chrono_tz::Europe::Paris;
        let starts = bucket_starts(
            ms("2026-03-28T12:00:00Z"),
            ms("2026-03-31T00:00:00Z"),
            Interval::Day,
            paris,
        );
        let want = [
            "2026-03-27T23:00:00Z", // midnight, UTC+1
            "2026-03-28T23:00:00Z", // 29 March: 23 hours long
            "2026-03-29T22:00:00Z", // midnight, UTC+2
            "2026-03-30T22:00:00Z",
        ];
        assert_eq!(starts, want.map(ms));
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let utc = chrono_tz::UTC;
        let weeks = bucket_starts(
            ms("2026-11-25T10:00:00Z"),
            ms("2026-12-08T00:00:00Z"),
            Interval::Week,
            utc,
        );
        assert_eq!(
            weeks,
            [
                "2026-11-23T00:00:00Z",
                "2026-11-30T00:00:00Z",
                "2026-12-07T00:00:00Z"
            ]
            .map(ms)
        );
        let months = bucket_starts(
            ms("2026-11-25T10:00:00Z"),
            ms("2027-01-02T00:00:00Z"),
            Interval::Month,
            utc,
        );
        assert_eq!(
            months,
            [
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z"
            ]
            .map(ms)
        );
    }
}
