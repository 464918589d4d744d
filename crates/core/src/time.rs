//! Calendar arithmetic for the wire formats we speak (RFC 3339, OData `datetime'...'`), on Unix
//! milliseconds in UTC. Pure functions; reading the clock is the edge's job.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats Unix ms as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T01:30:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Parses `YYYY-MM-DDThh:mm[:ss[.fff]]` (UTC, optional trailing `Z`) into Unix ms.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut tp = hms.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let s: i64 = tp.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let ms: i64 = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<3}")[..3].parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    let valid = (1..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=days_in_month(y, m)).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..60).contains(&s);
    valid.then(|| (days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms)
}

/// Parses an RFC 3339 timestamp with seconds and a zone, `Z` or `±hh:mm` (e.g.
/// `2026-12-01T00:00:00Z`, `2026-12-01T01:00:00.5+01:00`), into Unix ms.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let (local, offset_ms) = if let Some(t) = text.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let at = text.len().checked_sub(6)?;
        let (t, zone) = (text.get(..at)?, text.get(at..)?);
        let sign = match zone.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = zone[1..].split_once(':')?;
        let digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        let (h, m): (i64, i64) = match (digits(h), digits(m)) {
            (true, true) => (h.parse().ok()?, m.parse().ok()?),
            _ => return None,
        };
        if h > 23 || m > 59 {
            return None;
        }
        (t, sign * (h * 60 + m) * 60_000)
    };
    let t = local.replacen(['t', ' '], "T", 1);
    // Seconds are required: hh:mm:ss after the `T`.
    if t.split_once('T')?.1.split('.').next()?.len() != 8 {
        return None;
    }
    parse_datetime(&t).map(|ms| ms - offset_ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [0, 951_782_400_000, 1_795_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_datetime(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            parse_datetime("2026-11-18T11:06"),
            Some(1_795_000_000_000 - 40_000)
        );
        for bad in [
            "2026-02-30T00:00:00",
            "2026-13-01T00:00:00",
            "x",
            "2026-01-01",
            "2026-01-01T25:00:00",
            "2026-01-01T00:00:00.x",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_takes_zones_and_wants_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00.250+01:00"), Some(250));
        assert_eq!(parse_rfc3339("1969-12-31T23:30:00-00:30"), Some(0));
        assert_eq!(
            parse_rfc3339(&rfc3339(1_795_000_000_123)),
            Some(1_795_000_000_123)
        );
        for bad in [
            "2026-12-01T00:00:00",
            "2026-12-01T00:00Z",
            "2026-12-01Z",
            "2026-12-01T00:00:00+0100",
            "2026-12-01T00:00:00+24:00",
            "2026-12-01T00:00:00+01:60",
            "2026-12-01T00:00:00+aa:00",
            "2026-12-01T00:00:00ü",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
