//! Which responses are retried, and how long to wait before the next attempt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};

/// A Retry-After longer than this is treated as this: a receiver asking for
/// hours would otherwise stall the shard with no sign of life.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What to do with a batch after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: delivered; the body is ignored (spec: "clients MUST ignore the response body").
    Delivered,
    /// 5xx, or 429 when configured: send the same batch again after a backoff.
    Retry,
    /// Anything else (4xx, 429 without retry, 1xx/3xx): drop the batch.
    Reject,
}

/// Remote write 1.0 "Retries & Backoff": retry 5xx, never 2xx/4xx except 429 (MAY).
pub(crate) fn verdict(status: StatusCode, retry_on_http_429: bool) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status.is_server_error()
        || (status == StatusCode::TOO_MANY_REQUESTS && retry_on_http_429)
    {
        Verdict::Retry
    } else {
        Verdict::Reject
    }
}

/// Exponential backoff from `min` doubling up to `max`, each delay shortened
/// by up to 15% at random so that shards and agents do not retry in lockstep
/// (small enough that successive delays stay non-decreasing within 0.85x).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(self.max).max(self.min);
        base.mul_f64(1.0 - 0.15 * fastrand::f64())
    }
}

/// The delay a `Retry-After` header asks for: delay-seconds or an HTTP-date
/// (RFC 9110 §10.2.3). `None` when absent, unparsable or already past.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        parse_http_date(value)?.duration_since(now).ok()?
    };
    (!delay.is_zero()).then(|| delay.min(MAX_RETRY_AFTER))
}

/// Parses an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. The obsolete
/// RFC 850 and asctime forms are not accepted (the caller then falls back to
/// its own backoff, which is always safe).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = s.split_ascii_whitespace();
    let weekday = parts.next()?;
    if !weekday.ends_with(',') {
        return None;
    }
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(str::parse::<u32>);
    let (h, m, sec) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, u32::try_from(month).ok()? + 1, day);
    let secs = days * 86_400 + i64::from(h * 3600 + m * 60 + sec);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_table() {
        let cases = [
            (200, false, Verdict::Delivered),
            (204, false, Verdict::Delivered),
            (301, false, Verdict::Reject),
            (400, false, Verdict::Reject),
            (401, false, Verdict::Reject),
            (404, false, Verdict::Reject),
            (413, false, Verdict::Reject),
            (429, false, Verdict::Reject),
            (429, true, Verdict::Retry),
            (500, false, Verdict::Retry),
            (503, true, Verdict::Retry),
            (599, false, Verdict::Retry),
        ];
        for (code, retry429, want) in cases {
            let status = StatusCode::from_u16(code).expect("valid code");
            assert_eq!(
                verdict(status, retry429),
                want,
                "{code} retry_on_http_429={retry429}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_max_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(30), Duration::from_millis(500));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        let bases = [30u64, 60, 120, 240, 480, 500, 500, 500, 500, 500];
        for (d, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(*d <= base && *d >= base.mul_f64(0.85), "{d:?} vs {base:?}");
        }
        for w in delays.windows(2) {
            assert!(w[1].as_secs_f64() / w[0].as_secs_f64() >= 0.8, "{w:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::RETRY_AFTER, v.parse().expect("header"));
            m
        };
        assert_eq!(retry_after(&h("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&h("Sun, 06 Nov 1994 08:49:47 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&h("Sun, 06 Nov 1994 08:49:30 GMT"), now),
            None,
            "past date"
        );
        assert_eq!(retry_after(&h("0"), now), None);
        assert_eq!(retry_after(&h("999999"), now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&h("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }
}
