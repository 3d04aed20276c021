//! Event-time conversions shared by decoders and engines. Every time in slaflow is an i64 of
//! nanoseconds since the Unix epoch; these helpers convert the sources' representations with
//! checked arithmetic, so a hostile value yields `None` instead of an overflow panic.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// Nanoseconds per second.
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Seconds plus nanoseconds (Zabbix `clock` + `ns`).
pub fn from_secs_nanos(secs: i64, nanos: i64) -> Option<i64> {
    if !(0..NS_PER_SEC).contains(&nanos) {
        return None;
    }
    secs.checked_mul(NS_PER_SEC)?.checked_add(nanos)
}

/// Milliseconds since the epoch (Datadog `$DATE`).
pub fn from_millis(ms: i64) -> Option<i64> {
    ms.checked_mul(1_000_000)
}

/// Fractional seconds since the epoch (Icinga `timestamp`), rounded to the microsecond,
/// the precision Icinga writes.
pub fn from_float_secs(secs: f64) -> Option<i64> {
    if !secs.is_finite() {
        return None;
    }
    let micros = (secs * 1e6).round();
    if micros.abs() >= (i64::MAX / 1000) as f64 {
        return None;
    }
    (micros as i64).checked_mul(1000)
}

/// An RFC 3339 timestamp (`2019-09-27T16:27:56.612666101Z`). Also accepts the ISO 8601
/// offset without a colon (`+0000`) that PagerDuty documents.
pub fn from_rfc3339(text: &str) -> Option<i64> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?;
    parsed.timestamp_nanos_opt()
}

/// A local date and time as Zabbix macros write them (`{EVENT.DATE}` = `2024.10.28`,
/// `{EVENT.TIME}` = `01:18:32`), interpreted in the given time zone.
pub fn from_zabbix_date_time(date: &str, time: &str, tz: chrono_tz::Tz) -> Option<i64> {
    let date = NaiveDate::parse_from_str(date, "%Y.%m.%d").ok()?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S").ok()?;
    let local = NaiveDateTime::new(date, time);
    // In a DST fold the earlier instant is taken; in a gap there is no such local time.
    let zoned = local.and_local_timezone(tz).earliest()?;
    zoned.timestamp_nanos_opt()
}

/// Formats ns since the epoch as RFC 3339 (UTC), for messages and reports.
pub fn to_rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The wall clock, ns since the epoch: the receive time of inputs that carry none.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(from_secs_nanos(1519304285, 123456789), Some(1519304285123456789));
        assert_eq!(from_secs_nanos(1, NS_PER_SEC), None);
        assert_eq!(from_secs_nanos(i64::MAX, 0), None);
        assert_eq!(from_millis(1448435477000), Some(1448435477000000000));
        assert_eq!(from_float_secs(1697201110.220349), Some(1697201110220349000));
        assert_eq!(from_float_secs(f64::NAN), None);
        assert_eq!(from_float_secs(1e300), None);
        assert_eq!(
            from_rfc3339("2019-09-27T16:27:56.612666101Z"),
            Some(1569601676612666101)
        );
        assert_eq!(from_rfc3339("2015-07-17T08:42:58.315+0000"), Some(1437122578315000000));
        assert_eq!(from_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            from_zabbix_date_time("2024.10.28", "01:18:32", chrono_tz::UTC),
            Some(1730078312 * NS_PER_SEC)
        );
        assert_eq!(
            from_zabbix_date_time("2024.10.28", "02:18:32", chrono_tz::Europe::Riga),
            Some((1730078312 - 3600) * NS_PER_SEC)
        );
        assert_eq!(to_rfc3339(1569601676612666101), "2019-09-27T16:27:56.612666101Z");
    }
}
