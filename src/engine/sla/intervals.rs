//! Time arithmetic for SLA availability: unions of half-open intervals of UTC nanoseconds (`IntervalSet`),
//! business-hours schedules in a local time zone (`BusinessHours`), and local day and month boundaries
//! (`day_bounds`, `month_bounds`) that stay correct across DST changes.

use std::cmp::{max, min};
use std::fmt;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A range as wide as all of i64 spans about 213,000 days; this bound keeps `BusinessHours::intervals`
/// small in memory and time whatever range a caller passes.
const MAX_BUSINESS_INTERVALS: usize = 100_000;

/// Sorted, non-overlapping, non-empty half-open intervals.
///
/// Touching intervals are merged too, so the representation of a set of instants is unique and `==`
/// compares the instants covered. Deserialising accepts any list of `[start, end]` pairs and normalises it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(i64, i64)>", into = "Vec<(i64, i64)>")]
pub struct IntervalSet {
    spans: Vec<(i64, i64)>,
}

impl IntervalSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from any intervals (unsorted, overlapping, empty ones dropped): their union.
    pub fn from_intervals(iter: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut raw: Vec<(i64, i64)> = iter.into_iter().filter(|&(s, e)| s < e).collect();
        raw.sort_unstable();
        let mut spans: Vec<(i64, i64)> = Vec::with_capacity(raw.len());
        for (s, e) in raw {
            match spans.last_mut() {
                Some(last) if s <= last.1 => last.1 = max(last.1, e),
                _ => spans.push((s, e)),
            }
        }
        Self { spans }
    }

    /// Adds `[start, end)` to the set, merging it with every interval it overlaps or touches
    /// (`[0,5)` + `[5,9)` = `[0,9)`). An empty or reversed interval is ignored.
    pub fn insert(&mut self, start: i64, end: i64) {
        if start >= end {
            return;
        }
        // `<=`/`>=` rather than strict comparisons so that touching neighbours are merged as well.
        let lo = self.spans.partition_point(|&(_, e)| e < start);
        let hi = self.spans.partition_point(|&(s, _)| s <= end);
        if lo == hi {
            self.spans.insert(lo, (start, end));
            return;
        }
        let merged = (min(start, self.spans[lo].0), max(end, self.spans[hi - 1].1));
        self.spans.splice(lo..hi, std::iter::once(merged));
    }

    /// The intervals, sorted by start, pairwise disjoint and not touching.
    pub fn intervals(&self) -> &[(i64, i64)] {
        &self.spans
    }

    /// Sum of the interval lengths in nanoseconds, saturating at `i64::MAX`.
    pub fn total(&self) -> i64 {
        self.spans
            .iter()
            .fold(0i64, |acc, &(s, e)| acc.saturating_add(e.saturating_sub(s)))
    }

    /// Length of the longest interval in nanoseconds (saturating), 0 if the set is empty.
    pub fn longest(&self) -> i64 {
        self.spans.iter().map(|&(s, e)| e.saturating_sub(s)).max().unwrap_or(0)
    }

    /// Intersection with `[from, to)`; empty if `from >= to`.
    pub fn clip(&self, from: i64, to: i64) -> IntervalSet {
        let spans = self.clipped(from, to).collect();
        IntervalSet { spans }
    }

    /// The instants in both sets.
    pub fn intersect(&self, other: &IntervalSet) -> IntervalSet {
        let (a, b) = (&self.spans, &other.spans);
        let mut spans = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let s = max(a[i].0, b[j].0);
            let e = min(a[i].1, b[j].1);
            if s < e {
                spans.push((s, e));
            }
            // The interval that ends first cannot meet anything further along the other list.
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { spans }
    }

    /// The instants in `self` but not in `other`, e.g. downtime with maintenance windows carved out.
    pub fn subtract(&self, other: &IntervalSet) -> IntervalSet {
        let b = &other.spans;
        let mut spans = Vec::new();
        let mut j = 0;
        for &(s, e) in &self.spans {
            // Both lists are sorted, so a subtrahend that ends before this interval starts is done with for good.
            while j < b.len() && b[j].1 <= s {
                j += 1;
            }
            let mut cur = s;
            let mut k = j;
            while k < b.len() && b[k].0 < e {
                if b[k].0 > cur {
                    spans.push((cur, b[k].0));
                }
                cur = max(cur, b[k].1);
                if cur >= e {
                    break;
                }
                k += 1;
            }
            if cur < e {
                spans.push((cur, e));
            }
        }
        IntervalSet { spans }
    }

    /// Total length (saturating) of the set inside `[from, to)`, without allocating.
    pub fn overlap(&self, from: i64, to: i64) -> i64 {
        self.clipped(from, to)
            .fold(0i64, |acc, (s, e)| acc.saturating_add(e.saturating_sub(s)))
    }

    /// True if the set covers no instant.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn clipped(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let first = self.spans.partition_point(|&(_, e)| e <= from);
        self.spans[first..]
            .iter()
            .take_while(move |&&(s, _)| s < to)
            .map(move |&(s, e)| (max(s, from), min(e, to)))
            .filter(|&(s, e)| s < e)
    }
}

impl From<Vec<(i64, i64)>> for IntervalSet {
    /// Normalises arbitrary pairs, so deserialised data cannot break the set's invariants.
    fn from(raw: Vec<(i64, i64)>) -> Self {
        Self::from_intervals(raw)
    }
}

impl From<IntervalSet> for Vec<(i64, i64)> {
    fn from(set: IntervalSet) -> Self {
        set.spans
    }
}

/// A day of the week, written in configuration as a lowercase three-letter name ("mon" … "sun").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl From<Weekday> for Day {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// Business hours: the local-time weekly schedule that limits what counts for an SLA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// Days of the week that count, e.g. ["mon","tue","wed","thu","fri"] (lowercase 3-letter names).
    pub days: Vec<Day>,
    /// Local start time, "HH:MM" or "HH:MM:SS" (e.g. "08:00"), inclusive.
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub start: NaiveTime,
    /// Local end time, "HH:MM" or "HH:MM:SS" (e.g. "18:00"), exclusive; must be after start (no overnight shifts).
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub end: NaiveTime,
    /// Public holidays (local dates, "YYYY-MM-DD") that do not count.
    #[serde(default, deserialize_with = "de_dates")]
    pub holidays: Vec<NaiveDate>,
}

impl BusinessHours {
    /// The business-hours intervals within [from, to) in the time zone, as UTC ns (clipped to the range).
    /// Local times in a DST gap move forward to the first valid instant; in a fold take the earlier instant.
    ///
    /// At most 100,000 intervals are returned (about 380 years of weekdays); a longer range is cut off
    /// at its end rather than exhausting memory. A schedule that fails `validate` yields no intervals.
    pub fn intervals(&self, tz: Tz, from: i64, to: i64) -> IntervalSet {
        let mut set = IntervalSet::new();
        if from >= to || self.days.is_empty() || self.start >= self.end {
            return set;
        }
        let holidays = self.sorted_holidays();
        // One day of slack on each side: a day's business hours can lie in UTC on another date.
        let (Some(first), Some(last)) = (
            local_date_of(tz, from).pred_opt(),
            local_date_of(tz, to.saturating_sub(1)).succ_opt(),
        ) else {
            return set;
        };
        for date in first.iter_days().take_while(|d| *d <= last) {
            if !self.works_on(date, &holidays) {
                continue;
            }
            let Some((s, e)) = self.day_span(tz, date) else {
                continue;
            };
            let (s, e) = (max(s, from), min(e, to));
            if s < e {
                set.insert(s, e);
                if set.spans.len() >= MAX_BUSINESS_INTERVALS {
                    break;
                }
            }
        }
        set
    }

    /// Is the instant inside business hours?
    pub fn contains(&self, tz: Tz, t: i64) -> bool {
        if self.days.is_empty() || self.start >= self.end {
            return false;
        }
        let date = local_date_of(tz, t);
        // Neighbouring days too, so the answer always agrees with `intervals` even around odd DST folds.
        [date.pred_opt(), Some(date), date.succ_opt()]
            .into_iter()
            .flatten()
            .filter(|d| self.is_working_day(*d))
            .filter_map(|d| self.day_span(tz, d))
            .any(|(s, e)| s <= t && t < e)
    }

    /// Is this local date a working day (its weekday listed and not a holiday)?
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.days.contains(&Day::from(date.weekday())) && !self.holidays.contains(&date)
    }

    /// Checks: at least one day, end after start. Message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.days.is_empty() {
            return Err("business hours: `days` is empty; list at least one day, e.g. [\"mon\"]".to_string());
        }
        if self.end <= self.start {
            return Err(format!(
                "business hours: `end` ({}) must be after `start` ({}); overnight shifts are not supported",
                self.end.format("%H:%M:%S"),
                self.start.format("%H:%M:%S")
            ));
        }
        Ok(())
    }

    fn sorted_holidays(&self) -> Vec<NaiveDate> {
        let mut h = self.holidays.clone();
        h.sort_unstable();
        h
    }

    /// Like `is_working_day` but with holidays sorted up front, since `intervals` may test ~200k dates.
    fn works_on(&self, date: NaiveDate, sorted_holidays: &[NaiveDate]) -> bool {
        self.days.contains(&Day::from(date.weekday())) && sorted_holidays.binary_search(&date).is_err()
    }

    /// The day's [start, end) in UTC ns, saturated so that days beyond the i64 range clip away cleanly.
    fn day_span(&self, tz: Tz, date: NaiveDate) -> Option<(i64, i64)> {
        let s = resolve_local(tz, date.and_time(self.start))?;
        let e = resolve_local(tz, date.and_time(self.end))?;
        let (s, e) = (ns_saturating(&s), ns_saturating(&e));
        (s < e).then_some((s, e))
    }
}

/// Start of the calendar month containing `t` in `tz`, and the start of the next month, as UTC ns.
/// None if out of range.
pub fn month_bounds(tz: Tz, t: i64) -> Option<(i64, i64)> {
    let date = local_date_of(tz, t);
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    let next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
    };
    Some((start_of_day(tz, first)?, start_of_day(tz, next)?))
}

/// Start of the local day containing `t`, and of the next local day (23 or 25 hours apart on DST days),
/// as UTC ns. None if either lies outside the i64 range.
pub fn day_bounds(tz: Tz, t: i64) -> Option<(i64, i64)> {
    let date = local_date_of(tz, t);
    Some((start_of_day(tz, date)?, start_of_day(tz, date.succ_opt()?)?))
}

/// The local date of `t`.
pub fn local_date(tz: Tz, t: i64) -> Option<NaiveDate> {
    Some(local_date_of(tz, t))
}

/// "YYYY-MM" of the month containing `t` in `tz`.
pub fn month_label(tz: Tz, t: i64) -> Option<String> {
    let date = local_date_of(tz, t);
    Some(format!("{:04}-{:02}", date.year(), date.month()))
}

/// Every i64 of nanoseconds is a valid chrono instant, and local dates of it stay far inside chrono's range.
fn local_date_of(tz: Tz, t: i64) -> NaiveDate {
    DateTime::from_timestamp_nanos(t).with_timezone(&tz).date_naive()
}

/// A midnight that does not exist (DST starting at 00:00) resolves to the first instant after it.
fn start_of_day(tz: Tz, date: NaiveDate) -> Option<i64> {
    resolve_local(tz, date.and_time(NaiveTime::MIN))?.timestamp_nanos_opt()
}

fn ns_saturating(dt: &DateTime<Utc>) -> i64 {
    dt.timestamp_nanos_opt()
        .unwrap_or(if dt.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// Maps a local wall-clock time to one instant: the earlier one in a fold, the end of the gap in a gap.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => Some(t.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, b) => Some(min(a, b).with_timezone(&Utc)),
        MappedLocalTime::None => gap_end(tz, local),
    }
}

/// The transition instant that ends the DST gap containing `local`.
///
/// chrono-tz does not expose its transition table, so this finds the offsets on either side of the gap and
/// bisects between them: the gap is `[u + before, u + after)` in local time for the transition `u`, so `u`
/// lies in `(local - after, local - before]`, where `local + offset` is monotonic.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let offset_at = |secs: i64| -> Option<i64> {
        let utc = DateTime::from_timestamp(secs, 0)?;
        Some(i64::from(
            tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc(),
        ))
    };
    let wall = local.and_utc().timestamp();
    let o1 = offset_at(wall.checked_sub(offset_at(wall)?)?)?;
    let o2 = offset_at(wall.checked_sub(o1)?)?;
    let (before, after) = (min(o1, o2), max(o1, o2));
    // Transitions fall on whole seconds, so bisecting seconds finds the exact instant.
    let mut lo = wall.checked_sub(after)?;
    let mut hi = wall.checked_sub(before)?.checked_add(1)?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if mid.checked_add(offset_at(mid)?)? > wall {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::from_timestamp(lo, 0)
}

fn ser_time<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    // Writes "HH:MM" when it loses nothing, so a round trip reproduces hand-written configuration.
    let text = if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S%.f").to_string()
    };
    s.serialize_str(&text)
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let text = d.deserialize_str(TextVisitor)?;
    parse_time(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid time {text:?}: expected \"HH:MM\" or \"HH:MM:SS\"")))
}

fn de_dates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
    struct Date(NaiveDate);
    impl<'de> Deserialize<'de> for Date {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = d.deserialize_str(TextVisitor)?;
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| serde::de::Error::custom(format!("invalid date {text:?}: expected \"YYYY-MM-DD\"")))
        }
    }
    Ok(Vec::<Date>::deserialize(d)?.into_iter().map(|Date(d)| d).collect())
}

/// Strict "HH:MM" / "HH:MM:SS": chrono's own parser would also take "8:0" or a leap second ":60".
fn parse_time(text: &str) -> Option<NaiveTime> {
    let b = text.as_bytes();
    let two = |i: usize| -> Option<u32> {
        let (h, l) = (*b.get(i)?, *b.get(i + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    let (h, m) = (two(0)?, two(3)?);
    let s = match b.len() {
        5 => 0,
        8 if b[5] == b':' => two(6)?,
        _ => return None,
    };
    if b[2] != b':' || s >= 60 {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, s)
}

/// Reads a string, or a TOML bare date/time (`2026-12-25`, `08:00:00`), which the toml crate hands over as
/// a one-entry map holding its text; people write those unquoted in TOML and expect them to work.
struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let Some((_, text)) = map.next_entry::<serde::de::IgnoredAny, String>()? else {
            return Err(serde::de::Error::custom("expected a string, found an empty table"));
        };
        if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            return Err(serde::de::Error::custom("expected a string, found a table"));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1_000_000_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn set(v: &[(i64, i64)]) -> IntervalSet {
        IntervalSet::from_intervals(v.iter().copied())
    }

    fn weekdays_8_to_18() -> BusinessHours {
        BusinessHours {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            holidays: vec![],
        }
    }

    #[test]
    fn insert_merges_overlapping_and_touching() {
        let mut s = IntervalSet::new();
        s.insert(20, 30);
        s.insert(0, 5);
        s.insert(5, 9);
        assert_eq!(s.intervals(), &[(0, 9), (20, 30)]);
        s.insert(8, 12);
        assert_eq!(s.intervals(), &[(0, 12), (20, 30)]);
        s.insert(12, 20);
        assert_eq!(s.intervals(), &[(0, 30)]);
        s.insert(40, 40);
        s.insert(50, 45);
        assert_eq!(s.intervals(), &[(0, 30)]);
        s.insert(-10, 100);
        assert_eq!(s.intervals(), &[(-10, 100)]);
    }

    #[test]
    fn insert_between_existing_intervals_keeps_order() {
        let mut s = set(&[(0, 1), (10, 11)]);
        s.insert(5, 6);
        assert_eq!(s.intervals(), &[(0, 1), (5, 6), (10, 11)]);
    }

    #[test]
    fn from_intervals_unsorted_overlapping_and_empty() {
        let s = set(&[(50, 60), (0, 10), (5, 20), (20, 25), (30, 30), (40, 35), (55, 58)]);
        assert_eq!(s.intervals(), &[(0, 25), (50, 60)]);
        assert!(set(&[(3, 3), (9, 1)]).is_empty());
    }

    #[test]
    fn total_and_longest() {
        let s = set(&[(0, 10), (20, 45), (100, 101)]);
        assert_eq!(s.total(), 36);
        assert_eq!(s.longest(), 25);
        assert_eq!(IntervalSet::new().total(), 0);
        assert_eq!(IntervalSet::new().longest(), 0);
    }

    #[test]
    fn overlapping_alerts_count_as_their_union_not_their_sum() {
        let ten = utc(2026, 3, 2, 10, 0);
        let alerts = [(ten, ten + 40 * MIN), (ten + 20 * MIN, ten + 61 * MIN)];
        let downtime = IntervalSet::from_intervals(alerts);
        assert_eq!(downtime.total(), 61 * MIN);
        assert_eq!(downtime.longest(), 61 * MIN);
        assert_eq!(downtime.intervals().len(), 1);
    }

    #[test]
    fn subtract_carves_maintenance_out_of_downtime() {
        let downtime = set(&[(0, 10), (20, 30), (40, 60), (70, 80)]);
        // [0,10) partly covered, [20,30) wholly inside maintenance, [40,60) split in two, [70,80) untouched.
        let maintenance = set(&[(5, 15), (18, 32), (45, 50)]);
        let counted = downtime.subtract(&maintenance);
        assert_eq!(counted.intervals(), &[(0, 5), (40, 45), (50, 60), (70, 80)]);
        assert_eq!(counted.total(), 30);
        assert_eq!(downtime.subtract(&IntervalSet::new()), downtime);
        assert!(IntervalSet::new().subtract(&maintenance).is_empty());
        assert!(downtime.subtract(&set(&[(-1, 100)])).is_empty());
    }

    #[test]
    fn subtract_with_several_holes_in_one_interval() {
        let s = set(&[(0, 100)]).subtract(&set(&[(10, 20), (30, 40), (90, 110)]));
        assert_eq!(s.intervals(), &[(0, 10), (20, 30), (40, 90)]);
    }

    #[test]
    fn intersect_sets() {
        let a = set(&[(0, 10), (20, 30), (40, 50)]);
        let b = set(&[(5, 25), (28, 42), (60, 70)]);
        assert_eq!(a.intersect(&b).intervals(), &[(5, 10), (20, 25), (28, 30), (40, 42)]);
        assert_eq!(a.intersect(&b), b.intersect(&a));
        assert!(a.intersect(&IntervalSet::new()).is_empty());
        assert!(set(&[(0, 5)]).intersect(&set(&[(5, 9)])).is_empty());
    }

    #[test]
    fn clip_to_range() {
        let s = set(&[(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.clip(5, 45).intervals(), &[(5, 10), (20, 30), (40, 45)]);
        assert_eq!(s.clip(10, 20).intervals(), &[] as &[(i64, i64)]);
        assert_eq!(s.clip(25, 26).intervals(), &[(25, 26)]);
        assert!(s.clip(30, 5).is_empty());
        assert_eq!(s.clip(i64::MIN, i64::MAX), s);
    }

    #[test]
    fn overlap_matches_clip_total() {
        let s = set(&[(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.overlap(5, 45), 20);
        assert_eq!(s.overlap(10, 20), 0);
        assert_eq!(s.overlap(45, 5), 0);
        assert_eq!(s.overlap(-100, 100), 30);
        for (f, t) in [(0, 50), (3, 27), (29, 41), (-5, 1)] {
            assert_eq!(s.overlap(f, t), s.clip(f, t).total());
        }
    }

    #[test]
    fn serde_normalises_input() {
        #[derive(Deserialize, Serialize)]
        struct W {
            s: IntervalSet,
        }
        let w: W = toml::from_str("s = [[20, 30], [0, 10], [5, 12], [40, 40]]").unwrap();
        assert_eq!(w.s.intervals(), &[(0, 12), (20, 30)]);
        let back: W = toml::from_str(&toml::to_string(&w).unwrap()).unwrap();
        assert_eq!(back.s, w.s);
    }

    #[test]
    fn business_hours_gmt_week_in_london() {
        let bh = weekdays_8_to_18();
        let (from, to) = (utc(2026, 1, 5, 0, 0), utc(2026, 1, 12, 0, 0)); // Monday to Monday
        let got = bh.intervals(chrono_tz::Europe::London, from, to);
        let want: Vec<_> = (5..=9)
            .map(|d| (utc(2026, 1, d, 8, 0), utc(2026, 1, d, 18, 0)))
            .collect();
        assert_eq!(got.intervals(), want.as_slice());
        assert_eq!(got.total(), 50 * HOUR);
    }

    #[test]
    fn business_hours_bst_week_in_london() {
        let bh = weekdays_8_to_18();
        let (from, to) = (utc(2026, 6, 1, 0, 0), utc(2026, 6, 8, 0, 0)); // Monday to Monday
        let got = bh.intervals(chrono_tz::Europe::London, from, to);
        let want: Vec<_> = (1..=5)
            .map(|d| (utc(2026, 6, d, 7, 0), utc(2026, 6, d, 17, 0)))
            .collect();
        assert_eq!(got.intervals(), want.as_slice());
        assert!(got.intervals().iter().all(|&(s, e)| e - s == 10 * HOUR));
    }

    #[test]
    fn business_hours_clipped_to_range() {
        let bh = weekdays_8_to_18();
        let got = bh.intervals(
            chrono_tz::Europe::London,
            utc(2026, 1, 5, 12, 0),
            utc(2026, 1, 6, 9, 30),
        );
        assert_eq!(
            got.intervals(),
            &[
                (utc(2026, 1, 5, 12, 0), utc(2026, 1, 5, 18, 0)),
                (utc(2026, 1, 6, 8, 0), utc(2026, 1, 6, 9, 30))
            ]
        );
        assert!(bh.intervals(chrono_tz::Europe::London, 5, 5).is_empty());
    }

    #[test]
    fn business_hours_exclude_holidays() {
        let mut bh = weekdays_8_to_18();
        bh.holidays = vec![NaiveDate::from_ymd_opt(2026, 1, 7).unwrap()];
        let got = bh.intervals(chrono_tz::Europe::London, utc(2026, 1, 5, 0, 0), utc(2026, 1, 12, 0, 0));
        let starts: Vec<i64> = got.intervals().iter().map(|&(s, _)| s).collect();
        assert_eq!(starts, [5, 6, 8, 9].map(|d| utc(2026, 1, d, 8, 0)));
        assert!(!bh.contains(chrono_tz::Europe::London, utc(2026, 1, 7, 12, 0)));
    }

    #[test]
    fn business_hours_in_non_utc_zone_cross_utc_midnight() {
        // 08:00 in Tokyo (UTC+9) is 23:00 UTC the day before: the extra day of slack must catch it.
        let bh = weekdays_8_to_18();
        let tokyo = chrono_tz::Asia::Tokyo;
        let got = bh.intervals(tokyo, utc(2026, 1, 4, 23, 0), utc(2026, 1, 5, 9, 0));
        assert_eq!(got.intervals(), &[(utc(2026, 1, 4, 23, 0), utc(2026, 1, 5, 9, 0))]);
    }

    #[test]
    fn business_hours_start_in_dst_gap_moves_forward() {
        // London skips 01:00–02:00 local on 2026-03-29; a shift starting at 01:30 starts at 01:00 UTC (02:00 BST).
        let bh = BusinessHours {
            days: vec![Day::Sun],
            start: NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
            holidays: vec![],
        };
        let got = bh.intervals(
            chrono_tz::Europe::London,
            utc(2026, 3, 28, 0, 0),
            utc(2026, 3, 30, 0, 0),
        );
        assert_eq!(got.intervals(), &[(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))]);
    }

    #[test]
    fn business_hours_in_dst_fold_take_earlier_instant() {
        // London repeats 01:00–02:00 local on 2026-10-25 (BST then GMT); 01:30 means 00:30 UTC.
        let bh = BusinessHours {
            days: vec![Day::Sun],
            start: NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
            holidays: vec![],
        };
        let got = bh.intervals(
            chrono_tz::Europe::London,
            utc(2026, 10, 24, 0, 0),
            utc(2026, 10, 26, 0, 0),
        );
        assert_eq!(got.intervals(), &[(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3, 0))]);
    }

    #[test]
    fn contains_respects_days_hours_and_zone() {
        let bh = weekdays_8_to_18();
        let london = chrono_tz::Europe::London;
        assert!(bh.contains(london, utc(2026, 1, 5, 8, 0)));
        assert!(bh.contains(london, utc(2026, 1, 5, 17, 59)));
        assert!(!bh.contains(london, utc(2026, 1, 5, 18, 0)));
        assert!(!bh.contains(london, utc(2026, 1, 5, 7, 59)));
        assert!(!bh.contains(london, utc(2026, 1, 10, 12, 0))); // Saturday
        assert!(bh.contains(london, utc(2026, 6, 1, 7, 0))); // 08:00 BST
        assert!(!bh.contains(london, utc(2026, 6, 1, 17, 0))); // 18:00 BST
        assert!(!bh.contains(chrono_tz::UTC, utc(2026, 6, 1, 7, 0)));
    }

    #[test]
    fn contains_agrees_with_intervals() {
        let bh = weekdays_8_to_18();
        let tz = chrono_tz::America::New_York;
        let (from, to) = (utc(2026, 3, 6, 0, 0), utc(2026, 3, 10, 0, 0));
        let iv = bh.intervals(tz, from, to);
        let mut t = from;
        while t < to {
            assert_eq!(bh.contains(tz, t), iv.overlap(t, t + 1) == 1, "at {t}");
            t += 15 * MIN;
        }
    }

    #[test]
    fn is_working_day_checks_weekday_and_holidays() {
        let mut bh = weekdays_8_to_18();
        bh.holidays = vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()];
        assert!(bh.is_working_day(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())); // Thursday
        assert!(!bh.is_working_day(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap())); // Friday, holiday
        assert!(!bh.is_working_day(NaiveDate::from_ymd_opt(2026, 12, 26).unwrap()));
        // Saturday
    }

    #[test]
    fn validate_names_the_problem() {
        assert_eq!(weekdays_8_to_18().validate(), Ok(()));
        let mut bh = weekdays_8_to_18();
        bh.days.clear();
        assert!(bh.validate().unwrap_err().contains("days"));
        let mut bh = weekdays_8_to_18();
        bh.end = bh.start;
        let err = bh.validate().unwrap_err();
        assert!(err.contains("end") && err.contains("start"), "{err}");
        // An invalid schedule yields nothing rather than nonsense.
        assert!(bh.intervals(chrono_tz::UTC, 0, 7 * DAY).is_empty());
        assert!(!bh.contains(chrono_tz::UTC, 8 * HOUR));
    }

    #[test]
    fn toml_business_hours_with_hh_mm() {
        let bh: BusinessHours = toml::from_str(
            r#"
            days = ["mon", "tue", "wed", "thu", "fri"]
            start = "08:00"
            end = "17:30:15"
            holidays = ["2026-12-25", 2026-12-26]
            "#,
        )
        .unwrap();
        assert_eq!(bh.days, vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri]);
        assert_eq!(bh.start, NaiveTime::from_hms_opt(8, 0, 0).unwrap());
        assert_eq!(bh.end, NaiveTime::from_hms_opt(17, 30, 15).unwrap());
        assert_eq!(
            bh.holidays,
            vec![
                NaiveDate::from_ymd_opt(2026, 12, 25).unwrap(),
                NaiveDate::from_ymd_opt(2026, 12, 26).unwrap()
            ]
        );
        assert_eq!(bh.validate(), Ok(()));
        let text = toml::to_string(&bh).unwrap();
        assert!(text.contains("start = \"08:00\""), "{text}");
        assert_eq!(toml::from_str::<BusinessHours>(&text).unwrap(), bh);
    }

    #[test]
    fn toml_holidays_default_to_none() {
        let bh: BusinessHours = toml::from_str("days = [\"sat\"]\nstart = \"09:00\"\nend = \"12:00\"").unwrap();
        assert!(bh.holidays.is_empty());
        assert_eq!(bh.days, vec![Day::Sat]);
    }

    #[test]
    fn toml_rejects_unknown_keys_and_bad_values() {
        let base = "days = [\"mon\"]\nstart = \"08:00\"\nend = \"18:00\"\n";
        let err = toml::from_str::<BusinessHours>(&format!("{base}timezone = \"UTC\"")).unwrap_err();
        assert!(err.to_string().contains("timezone"), "{err}");
        for bad in ["8:00", "08:00:60", "24:00", "08-00", "08:00:0", "", "08:00 "] {
            let text = format!("days = [\"mon\"]\nstart = \"{bad}\"\nend = \"18:00\"");
            assert!(toml::from_str::<BusinessHours>(&text).is_err(), "accepted {bad:?}");
        }
        assert!(toml::from_str::<BusinessHours>("days = [\"monday\"]\nstart = \"08:00\"\nend = \"18:00\"").is_err());
        assert!(toml::from_str::<BusinessHours>(&format!("{base}holidays = [\"2026-02-30\"]")).is_err());
        assert!(toml::from_str::<BusinessHours>("days = [\"mon\"]\nstart = \"08:00\"").is_err());
    }

    #[test]
    fn month_bounds_berlin_march_2026_loses_an_hour() {
        let berlin = chrono_tz::Europe::Berlin;
        let (start, end) = month_bounds(berlin, utc(2026, 3, 15, 12, 0)).unwrap();
        assert_eq!(start, utc(2026, 2, 28, 23, 0)); // 00:00 CET
        assert_eq!(end, utc(2026, 3, 31, 22, 0)); // 00:00 CEST
        assert_eq!(end - start, 743 * HOUR);
        // An instant that is still February in UTC but already March in Berlin.
        assert_eq!(month_bounds(berlin, utc(2026, 2, 28, 23, 30)), Some((start, end)));
        assert_eq!(
            month_label(berlin, utc(2026, 2, 28, 23, 30)).as_deref(),
            Some("2026-03")
        );
    }

    #[test]
    fn month_bounds_utc() {
        let tz = chrono_tz::UTC;
        assert_eq!(
            month_bounds(tz, utc(2026, 2, 10, 5, 0)),
            Some((utc(2026, 2, 1, 0, 0), utc(2026, 3, 1, 0, 0)))
        );
        assert_eq!(
            month_bounds(tz, utc(2026, 12, 31, 23, 59)),
            Some((utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0)))
        );
        assert_eq!(month_bounds(tz, 0), Some((0, 31 * DAY)));
    }

    #[test]
    fn day_bounds_on_dst_change_days() {
        let london = chrono_tz::Europe::London;
        let (s, e) = day_bounds(london, utc(2026, 3, 29, 12, 0)).unwrap();
        assert_eq!((s, e), (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 23, 0)));
        assert_eq!(e - s, 23 * HOUR);
        let (s, e) = day_bounds(london, utc(2026, 10, 25, 12, 0)).unwrap();
        assert_eq!((s, e), (utc(2026, 10, 24, 23, 0), utc(2026, 10, 26, 0, 0)));
        assert_eq!(e - s, 25 * HOUR);
        assert_eq!(day_bounds(chrono_tz::UTC, 5), Some((0, DAY)));
    }

    #[test]
    fn day_bounds_when_local_midnight_does_not_exist() {
        // Santiago moves 00:00 -04 to 01:00 -03 on 2026-09-06: that day starts at 04:00 UTC and lasts 23 h.
        let santiago = chrono_tz::America::Santiago;
        let (s, e) = day_bounds(santiago, utc(2026, 9, 6, 12, 0)).unwrap();
        assert_eq!((s, e), (utc(2026, 9, 6, 4, 0), utc(2026, 9, 7, 3, 0)));
        assert_eq!(local_date(santiago, s), NaiveDate::from_ymd_opt(2026, 9, 6));
        assert_eq!(local_date(santiago, s - 1), NaiveDate::from_ymd_opt(2026, 9, 5));
        // The previous day ends where this one starts.
        assert_eq!(
            day_bounds(santiago, utc(2026, 9, 5, 12, 0)),
            Some((utc(2026, 9, 5, 4, 0), s))
        );
    }

    #[test]
    fn gaps_of_odd_length_resolve_to_the_transition() {
        // Lord Howe Island springs forward by 30 minutes: 02:00 +10:30 becomes 02:30 +11 (15:30 UTC).
        let bh = BusinessHours {
            days: vec![Day::Sun],
            start: NaiveTime::from_hms_opt(2, 15, 0).unwrap(),
            end: NaiveTime::from_hms_opt(4, 0, 0).unwrap(),
            holidays: vec![],
        };
        let got = bh.intervals(
            chrono_tz::Australia::Lord_Howe,
            utc(2026, 10, 3, 0, 0),
            utc(2026, 10, 5, 0, 0),
        );
        assert_eq!(got.intervals(), &[(utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 17, 0))]);
        // Samoa skipped 30 December 2011 entirely: 29 December is followed directly by the 31st.
        let apia = chrono_tz::Pacific::Apia;
        let (s, e) = day_bounds(apia, utc(2011, 12, 29, 22, 0)).unwrap();
        assert_eq!((s, e), (utc(2011, 12, 29, 10, 0), utc(2011, 12, 30, 10, 0)));
        assert_eq!(local_date(apia, e), NaiveDate::from_ymd_opt(2011, 12, 31));
    }

    #[test]
    fn set_operations_match_a_brute_force_model() {
        // A tiny xorshift keeps the test deterministic without a dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as i64
        };
        const N: usize = 64;
        let random_set = |next: &mut dyn FnMut(u64) -> i64| {
            let mut bits = [false; N];
            let mut s = IntervalSet::new();
            for _ in 0..next(6) {
                let a = next(N as u64);
                let b = a + next(12);
                s.insert(a, b.min(N as i64));
                for bit in bits.iter_mut().take(b.min(N as i64) as usize).skip(a as usize) {
                    *bit = true;
                }
            }
            (s, bits)
        };
        let covered = |s: &IntervalSet| {
            let mut bits = [false; N];
            for &(a, b) in s.intervals() {
                bits[a as usize..b as usize].iter_mut().for_each(|x| *x = true);
            }
            bits
        };
        for _ in 0..500 {
            let (a, abits) = random_set(&mut next);
            let (b, bbits) = random_set(&mut next);
            assert!(a.intervals().windows(2).all(|w| w[0].1 < w[1].0), "{a:?}");
            assert_eq!(covered(&a), abits);
            assert_eq!(a.total(), abits.iter().filter(|x| **x).count() as i64);
            let inter = a.intersect(&b);
            let diff = a.subtract(&b);
            for i in 0..N {
                assert_eq!(covered(&inter)[i], abits[i] && bbits[i]);
                assert_eq!(covered(&diff)[i], abits[i] && !bbits[i]);
            }
            for s in [&inter, &diff] {
                assert!(s.intervals().windows(2).all(|w| w[0].1 < w[1].0), "{s:?}");
                assert_eq!(*s, IntervalSet::from_intervals(s.intervals().iter().copied()));
            }
            let (f, t) = (next(N as u64), next(N as u64));
            let want = (f.max(0)..t).filter(|&i| abits[i as usize]).count() as i64;
            assert_eq!(a.overlap(f, t), want);
            assert_eq!(a.clip(f, t).total(), want);
        }
    }

    #[test]
    fn local_date_and_month_label() {
        let tokyo = chrono_tz::Asia::Tokyo;
        let t = utc(2026, 1, 31, 20, 0); // 05:00 on 1 February in Tokyo
        assert_eq!(local_date(tokyo, t), NaiveDate::from_ymd_opt(2026, 2, 1));
        assert_eq!(local_date(chrono_tz::UTC, t), NaiveDate::from_ymd_opt(2026, 1, 31));
        assert_eq!(month_label(tokyo, t).as_deref(), Some("2026-02"));
        assert_eq!(month_label(chrono_tz::UTC, t).as_deref(), Some("2026-01"));
        assert_eq!(month_label(chrono_tz::UTC, 0).as_deref(), Some("1970-01"));
    }

    #[test]
    fn hostile_interval_values_do_not_panic() {
        let mut s = IntervalSet::new();
        s.insert(i64::MIN, i64::MAX);
        assert_eq!(s.total(), i64::MAX);
        assert_eq!(s.longest(), i64::MAX);
        assert_eq!(s.overlap(i64::MIN, i64::MAX), i64::MAX);
        assert_eq!(s.clip(i64::MIN, 0).intervals(), &[(i64::MIN, 0)]);
        assert!(s.subtract(&s).is_empty());
        assert_eq!(s.intersect(&s), s);
        let split = s.subtract(&set(&[(-1, 1)]));
        assert_eq!(split.intervals(), &[(i64::MIN, -1), (1, i64::MAX)]);
        assert_eq!(split.total(), i64::MAX);
    }

    #[test]
    fn hostile_calendar_ranges_do_not_panic() {
        for tz in [
            chrono_tz::UTC,
            chrono_tz::Europe::Berlin,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::America::Santiago,
        ] {
            for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                let _ = month_bounds(tz, t);
                let _ = day_bounds(tz, t);
                assert!(local_date(tz, t).is_some());
                assert!(month_label(tz, t).is_some());
                let _ = weekdays_8_to_18().contains(tz, t);
            }
        }
        // The next month after i64::MAX's does not fit in i64.
        assert_eq!(month_bounds(chrono_tz::UTC, i64::MAX), None);
        assert_eq!(month_label(chrono_tz::UTC, i64::MIN).as_deref(), Some("1677-09"));
    }

    #[test]
    fn hostile_business_hours_range_is_capped() {
        let bh = weekdays_8_to_18();
        let all = bh.intervals(chrono_tz::Europe::London, i64::MIN, i64::MAX);
        assert_eq!(all.intervals().len(), MAX_BUSINESS_INTERVALS);
        assert!(all.intervals().windows(2).all(|w| w[0].1 < w[1].0));
        // The first day starts at the very beginning of the representable range.
        assert!(all.intervals()[0].0 > i64::MIN);
        assert!(bh.intervals(chrono_tz::UTC, i64::MAX, i64::MIN).is_empty());
        let end = bh.intervals(chrono_tz::UTC, i64::MAX - DAY * 7, i64::MAX);
        // i64::MAX is 23:47 UTC on Friday 2262-04-11, so the last week holds five whole working days.
        assert_eq!(end.intervals().len(), 5);
        assert_eq!(end.total(), 50 * HOUR);
    }
}
