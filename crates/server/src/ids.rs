//! Random identifiers for responses, items and tool calls (`chatcmpl-…`,
//! `resp_…`, `call_…`), and the clock. No `rand` dependency: std's
//! per-process random hasher keys plus a counter are unique and unguessable
//! enough for ids (they are not secrets).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` followed by 24 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = RandomState::new().build_hasher();
    a.write_u64(n);
    let mut b = RandomState::new().build_hasher();
    b.write_u64(n ^ 0x9e37_79b9_7f4a_7c15);
    format!("{prefix}{:016x}{:08x}", a.finish(), b.finish() as u32)
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Today's UTC date as `YYYY-MM-DD` (the harmony system message's
/// "Current date", as OpenAI's reference server writes it).
pub fn today_utc() -> String {
    let days = (unix_seconds() / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix seconds as an RFC 3339 UTC timestamp (`2025-01-31T12:00:00Z`),
/// the form of Anthropic's `created_at`.
pub fn rfc3339_utc(seconds: u64) -> String {
    let (y, m, d) = civil_from_days((seconds / 86_400) as i64);
    let s = seconds % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `t` as an RFC 3339 UTC timestamp with nanoseconds
/// (`2024-02-29T13:05:09.123456789Z`), as Ollama writes `created_at`.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(rfc3339_utc(1_704_067_200 + 3661), "2024-01-01T01:01:01Z");
    }

    #[test]
    fn rfc3339_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::new(19_782 * 86_400 + 13 * 3600 + 5 * 60 + 9, 7);
        assert_eq!(rfc3339_nanos(t), "2024-02-29T13:05:09.000000007Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn ids_are_unique() {
        let a = new_id("call_");
        let b = new_id("call_");
        assert_ne!(a, b);
        assert!(a.starts_with("call_") && a.len() == 5 + 24);
    }
}
