//! Maintenance windows: their configuration (TOML `[[maintenance]]`), validation, and the occurrence
//! arithmetic used to suppress alerts and to exclude time from SLA calculations.
//! All instants are `i64` nanoseconds since the Unix epoch (UTC); occurrences are half-open `[start, end)`.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most occurrences [`MaintenanceWindow::occurrences`] returns for one call.
const MAX_OCCURRENCES: usize = 100_000;

/// Nanoseconds per second.
const NS_PER_SEC: i64 = 1_000_000_000;

/// Seconds per day.
const SECS_PER_DAY: i64 = 86_400;

/// Slack, in nanoseconds, between a local wall-clock time read as UTC and the real UTC instant: covers any
/// UTC offset (under 26 h) plus a DST/zone gap shift (at most about a day, e.g. Samoa 2011).
const MARGIN_NS: i64 = 3 * SECS_PER_DAY * NS_PER_SEC;

/// Default time zone for windows that do not name one.
fn utc() -> Tz {
    Tz::UTC
}

/// One maintenance window from the configuration file (TOML `[[maintenance]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Name of the window, shown in output records.
    pub name: String,
    /// Services the window covers (exact, case-sensitive match).
    #[serde(default)]
    pub services: Vec<String>,
    /// Configuration items the window covers (exact, case-sensitive match).
    #[serde(default)]
    pub cis: Vec<String>,
    /// Local wall-clock start of the first occurrence in `timezone`, as a quoted string, e.g.
    /// `"2026-11-01T02:00:00"` (a bare TOML datetime literal is rejected).
    /// Every later occurrence starts at the same wall-clock time on its own local date.
    pub start: NaiveDateTime,
    /// Length of each occurrence, in humantime syntax (e.g. `"2h"`, `"90m"`); absolute elapsed time,
    /// so an occurrence spanning a DST change still lasts exactly this long.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// IANA time zone name (e.g. `"Europe/Berlin"`) in which `start` is read; defaults to UTC.
    #[serde(default = "utc")]
    pub timezone: Tz,
    /// How the window repeats: `once` (default), `daily`, `weekly` or `monthly`.
    #[serde(default)]
    pub recurrence: Recurrence,
    /// Last local date (in `timezone`) on which an occurrence may start, inclusive, as a quoted string,
    /// e.g. `"2027-03-31"`; absent = no end.
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

/// How a maintenance window repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// A single occurrence at `start`.
    #[default]
    Once,
    /// Every day at the local time of `start`.
    Daily,
    /// Every week on the weekday of `start`, at its local time.
    Weekly,
    /// Every month on the day-of-month of `start`, at its local time; months without that day
    /// (e.g. the 31st in April) are skipped.
    Monthly,
}

/// What the recurrence rule yields for one occurrence index.
enum Nth {
    /// The occurrence starts at this local wall-clock time.
    At(NaiveDateTime),
    /// No occurrence for this index (a month without the day), but later indices may have one.
    Skip,
    /// No occurrence for this index nor any later one.
    End,
}

impl MaintenanceWindow {
    /// Does the window apply to this service or CI? Exact match against `services` or `cis`;
    /// empty strings never match.
    pub fn covers(&self, service: &str, ci: &str) -> bool {
        (!service.is_empty() && self.services.iter().any(|s| s == service))
            || (!ci.is_empty() && self.cis.iter().any(|c| c == ci))
    }

    /// Is the instant (ns since the Unix epoch, UTC) inside an occurrence? Half-open `[start, end)`.
    /// Only the occurrences around `t_ns` are computed, so the cost does not grow with the window's age.
    pub fn contains(&self, t_ns: i64) -> bool {
        let mut found = false;
        self.scan(t_ns, t_ns.saturating_add(1), |_, _| {
            found = true;
            false
        });
        found
    }

    /// Occurrences overlapping `[from_ns, to_ns)`, as UTC `(start_ns, end_ns)` pairs, in order, NOT clipped
    /// to the range. At most 100 000 are returned; occurrences whose start is not representable as `i64`
    /// nanoseconds (before 1677 or after 2262) are left out.
    pub fn occurrences(&self, from_ns: i64, to_ns: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        self.scan(from_ns, to_ns, |s, e| {
            out.push((s, e));
            out.len() < MAX_OCCURRENCES
        });
        out
    }

    /// Checks the window: non-empty name, duration > 0, at least one (non-empty) service or CI, and for a
    /// recurring window a duration shorter than the recurrence period (1 day / 7 days / 28 days).
    /// Returns a message naming the problem.
    pub fn validate(&self) -> Result<(), String> {
        let label = if self.name.trim().is_empty() {
            return Err("maintenance window: name is empty".to_string());
        } else {
            format!("maintenance window '{}'", self.name)
        };
        if self.duration.is_zero() {
            return Err(format!("{label}: duration must be greater than 0"));
        }
        if i64::try_from(self.duration.as_nanos()).is_err() {
            return Err(format!("{label}: duration {:?} is too large", self.duration));
        }
        let has_target = self.services.iter().chain(&self.cis).any(|s| !s.is_empty());
        if !has_target {
            return Err(format!("{label}: needs at least one service or CI"));
        }
        let period_days = match self.recurrence {
            Recurrence::Once => None,
            Recurrence::Daily => Some(1),
            Recurrence::Weekly => Some(7),
            Recurrence::Monthly => Some(28),
        };
        if let Some(days) = period_days {
            let period = Duration::from_secs(days * SECS_PER_DAY.unsigned_abs());
            if self.duration >= period {
                return Err(format!(
                    "{label}: duration {:?} must be shorter than the {:?} recurrence period ({days} days)",
                    self.duration, self.recurrence
                ));
            }
        }
        Ok(())
    }

    /// Duration in nanoseconds, saturated to `i64::MAX`.
    fn duration_ns(&self) -> i64 {
        i64::try_from(self.duration.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Calls `f(start_ns, end_ns)` for each occurrence overlapping `[from_ns, to_ns)`, in order, until `f`
    /// returns false or the occurrences run out.
    fn scan(&self, from_ns: i64, to_ns: i64, mut f: impl FnMut(i64, i64) -> bool) {
        if from_ns >= to_ns {
            return;
        }
        let dur = self.duration_ns();
        let mut k = self.first_index(from_ns.saturating_sub(dur).saturating_sub(MARGIN_NS));
        loop {
            match self.nth_local(k) {
                Nth::End => return,
                Nth::Skip => {}
                Nth::At(local) => match local_to_utc_ns(self.timezone, local) {
                    Some(start) => {
                        if start >= to_ns {
                            return;
                        }
                        let end = start.saturating_add(dur);
                        if end > from_ns && !f(start, end) {
                            return;
                        }
                    }
                    // Before 1677: later occurrences may be representable. After 2262: none are.
                    None if local.year() < 1970 => {}
                    None => return,
                },
            }
            k = match k.checked_add(1) {
                Some(next) => next,
                None => return,
            };
        }
    }

    /// Smallest occurrence index whose occurrence could start at or after `lo_ns` (UTC). Every index below it
    /// has a local start more than two days before `lo_ns`, so its UTC start is before `lo_ns` too.
    fn first_index(&self, lo_ns: i64) -> i64 {
        let lo_date = DateTime::from_timestamp_nanos(lo_ns).date_naive();
        let start_date = self.start.date();
        match self.recurrence {
            Recurrence::Once => 0,
            Recurrence::Daily | Recurrence::Weekly => {
                let step = if self.recurrence == Recurrence::Daily { 1 } else { 7 };
                let days = lo_date.signed_duration_since(start_date).num_days();
                if days <= 0 {
                    0
                } else {
                    days / step
                }
            }
            Recurrence::Monthly => {
                let months = month_index(lo_date).saturating_sub(month_index(start_date));
                months.max(0)
            }
        }
    }

    /// Local wall-clock start of occurrence `k` (0 = `start`), honouring `until`.
    fn nth_local(&self, k: i64) -> Nth {
        let start_date = self.start.date();
        let date = match self.recurrence {
            Recurrence::Once => {
                if k == 0 {
                    start_date
                } else {
                    return Nth::End;
                }
            }
            Recurrence::Daily | Recurrence::Weekly => {
                let step = if self.recurrence == Recurrence::Daily { 1 } else { 7 };
                let date = k
                    .checked_mul(step)
                    .and_then(TimeDelta::try_days)
                    .and_then(|d| start_date.checked_add_signed(d));
                match date {
                    Some(d) => d,
                    None => return Nth::End,
                }
            }
            Recurrence::Monthly => {
                let Some(total) = month_index(start_date).checked_add(k) else {
                    return Nth::End;
                };
                let Ok(year) = i32::try_from(total.div_euclid(12)) else {
                    return Nth::End;
                };
                // rem_euclid(12) is in 0..12, so the cast is lossless.
                let month = total.rem_euclid(12) as u32 + 1;
                if NaiveDate::from_ymd_opt(year, month, 1).is_none() {
                    return Nth::End;
                }
                match NaiveDate::from_ymd_opt(year, month, start_date.day()) {
                    Some(d) => d,
                    None => return Nth::Skip,
                }
            }
        };
        if self.until.is_some_and(|until| date > until) {
            return Nth::End;
        }
        Nth::At(date.and_time(self.start.time()))
    }
}

/// Months since year 0 (`year * 12 + month0`) of a date.
fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// UTC nanoseconds of a local wall-clock time in `tz`: in a fold the earlier instant, in a gap the first
/// valid instant after the gap. `None` when not representable as `i64` nanoseconds.
fn local_to_utc_ns(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    let utc = match tz.from_local_datetime(&local) {
        LocalResult::Single(dt) => dt.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, local)?,
    };
    utc.timestamp()
        .checked_mul(NS_PER_SEC)?
        .checked_add(i64::from(utc.timestamp_subsec_nanos()))
}

/// First instant at which the wall clock of `tz` reads later than `local`, a local time inside a gap:
/// that is the transition ending the gap. Found by bisection over whole seconds (zone transitions fall on
/// whole seconds) within a bracket wider than any UTC offset plus gap.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let wall = |secs: i64| tz.timestamp_opt(secs, 0).single().map(|dt| dt.naive_local());
    let naive_secs = local.and_utc().timestamp();
    let mut lo = naive_secs.checked_sub(2 * SECS_PER_DAY)?;
    let mut hi = naive_secs.checked_add(2 * SECS_PER_DAY)?;
    // Invariant: wall(lo) < local <= wall(hi).
    if wall(lo)? >= local || wall(hi)? < local {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid)? < local {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The occurrences of the `windows` that cover a service or CI within [from, to), clipped
/// to it: what both engines exclude (the correlation engine's suppression, the SLA
/// engine's availability).
pub fn covering<'a>(
    windows: &'a [MaintenanceWindow],
    service: &'a str,
    ci: &'a str,
    from: i64,
    to: i64,
) -> impl Iterator<Item = (i64, i64)> + 'a {
    windows
        .iter()
        .filter(move |w| w.covers(service, ci))
        .flat_map(move |w| w.occurrences(from, to))
        .map(move |(s, e)| (s.max(from), e.min(to)))
        .filter(|(s, e)| s < e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};

    /// UTC instant in ns from a `YYYY-MM-DDTHH:MM:SS` string.
    fn ns(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    fn window(start: &str, hours: u64, tz: Tz, recurrence: Recurrence) -> MaintenanceWindow {
        MaintenanceWindow {
            name: "patching".to_string(),
            services: vec!["billing".to_string()],
            cis: vec!["db-01".to_string()],
            start: local(start),
            duration: Duration::from_secs(hours * 3600),
            timezone: tz,
            recurrence,
            until: None,
        }
    }

    const HOUR: i64 = 3600 * NS_PER_SEC;

    #[test]
    fn once_has_exactly_one_unclipped_occurrence() {
        let w = window("2026-11-01T02:00:00", 2, Tz::UTC, Recurrence::Once);
        let expected = (ns("2026-11-01T02:00:00"), ns("2026-11-01T04:00:00"));
        assert_eq!(
            w.occurrences(ns("2026-01-01T00:00:00"), ns("2027-01-01T00:00:00")),
            vec![expected]
        );
        // A range cutting the occurrence returns it whole.
        assert_eq!(
            w.occurrences(ns("2026-11-01T03:00:00"), ns("2026-11-01T03:30:00")),
            vec![expected]
        );
        // Ranges touching only the half-open bounds see nothing.
        assert!(w
            .occurrences(ns("2026-11-01T04:00:00"), ns("2026-12-01T00:00:00"))
            .is_empty());
        assert!(w
            .occurrences(ns("2026-10-01T00:00:00"), ns("2026-11-01T02:00:00"))
            .is_empty());
        // Empty or inverted range.
        assert!(w.occurrences(expected.0, expected.0).is_empty());
        assert!(w.occurrences(expected.1, expected.0).is_empty());
    }

    #[test]
    fn daily_over_a_month_from_an_old_start() {
        let w = window("2001-01-01T22:00:00", 1, Tz::UTC, Recurrence::Daily);
        let occ = w.occurrences(ns("2026-03-01T00:00:00"), ns("2026-04-01T00:00:00"));
        assert_eq!(occ.len(), 31);
        assert_eq!(occ[0], (ns("2026-03-01T22:00:00"), ns("2026-03-01T23:00:00")));
        assert_eq!(occ[30], (ns("2026-03-31T22:00:00"), ns("2026-03-31T23:00:00")));
        assert!(occ.windows(2).all(|p| p[1].0 - p[0].0 == 24 * HOUR));
    }

    #[test]
    fn daily_occurrence_straddling_range_start_is_included_unclipped() {
        let w = window("2026-01-01T23:30:00", 1, Tz::UTC, Recurrence::Daily);
        let occ = w.occurrences(ns("2026-03-01T00:00:00"), ns("2026-03-02T00:00:00"));
        assert_eq!(occ.len(), 2);
        assert_eq!(occ[0], (ns("2026-02-28T23:30:00"), ns("2026-03-01T00:30:00")));
        assert_eq!(occ[1], (ns("2026-03-01T23:30:00"), ns("2026-03-02T00:30:00")));
    }

    #[test]
    fn weekly_in_berlin_keeps_local_time_across_october_dst_change() {
        // 2026-10-25 is the last Sunday of October: CEST (+2) ends, CET (+1) begins.
        let w = window("2026-10-11T10:00:00", 2, chrono_tz::Europe::Berlin, Recurrence::Weekly);
        let occ = w.occurrences(ns("2026-10-01T00:00:00"), ns("2026-11-05T00:00:00"));
        let starts: Vec<i64> = occ.iter().map(|o| o.0).collect();
        assert_eq!(
            starts,
            vec![
                ns("2026-10-11T08:00:00"),
                ns("2026-10-18T08:00:00"),
                ns("2026-10-25T09:00:00"),
                ns("2026-11-01T09:00:00"),
            ]
        );
        assert!(occ.iter().all(|&(s, e)| e - s == 2 * HOUR));
        for &(s, _) in &occ {
            let local = DateTime::from_timestamp_nanos(s).with_timezone(&chrono_tz::Europe::Berlin);
            assert_eq!(local.weekday(), Weekday::Sun);
            assert_eq!(local.time(), NaiveTime::from_hms_opt(10, 0, 0).unwrap());
        }
    }

    #[test]
    fn monthly_on_the_31st_skips_short_months() {
        let w = window("2026-01-31T12:00:00", 3, Tz::UTC, Recurrence::Monthly);
        let occ = w.occurrences(ns("2026-01-01T00:00:00"), ns("2027-01-01T00:00:00"));
        let expected: Vec<(i64, i64)> = ["01", "03", "05", "07", "08", "10", "12"]
            .iter()
            .map(|m| {
                let s = ns(&format!("2026-{m}-31T12:00:00"));
                (s, s + 3 * HOUR)
            })
            .collect();
        assert_eq!(occ, expected);
        // Jumping into a later year works the same way.
        let later = w.occurrences(ns("2030-04-01T00:00:00"), ns("2030-06-01T00:00:00"));
        assert_eq!(later, vec![(ns("2030-05-31T12:00:00"), ns("2030-05-31T15:00:00"))]);
    }

    #[test]
    fn until_is_inclusive() {
        let mut w = window("2026-03-01T10:00:00", 1, Tz::UTC, Recurrence::Daily);
        w.until = Some(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap());
        let occ = w.occurrences(ns("2026-01-01T00:00:00"), ns("2027-01-01T00:00:00"));
        assert_eq!(occ.len(), 5);
        assert_eq!(occ[0].0, ns("2026-03-01T10:00:00"));
        assert_eq!(occ[4].0, ns("2026-03-05T10:00:00"));
        assert!(w.contains(ns("2026-03-05T10:30:00")));
        assert!(!w.contains(ns("2026-03-06T10:30:00")));
        // `until` is a local date: in Berlin a 00:30 local start on the until date is the day before in UTC.
        let mut b = window("2026-03-01T00:30:00", 1, chrono_tz::Europe::Berlin, Recurrence::Daily);
        b.until = Some(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        let occ = b.occurrences(ns("2026-01-01T00:00:00"), ns("2027-01-01T00:00:00"));
        assert_eq!(
            occ.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![ns("2026-02-28T23:30:00"), ns("2026-03-01T23:30:00")]
        );
    }

    #[test]
    fn start_in_dst_gap_moves_to_end_of_gap() {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
        let w = window("2026-03-29T02:30:00", 2, chrono_tz::Europe::Berlin, Recurrence::Once);
        let occ = w.occurrences(i64::MIN, i64::MAX);
        // 03:00 CEST = 01:00 UTC; the end is start + 2h of real time.
        assert_eq!(occ, vec![(ns("2026-03-29T01:00:00"), ns("2026-03-29T03:00:00"))]);
        assert!(w.contains(ns("2026-03-29T01:00:00")));
        assert!(!w.contains(ns("2026-03-29T00:59:59")));

        // A daily window hits the gap only on that one day.
        let d = window("2026-03-27T02:30:00", 1, chrono_tz::Europe::Berlin, Recurrence::Daily);
        let starts: Vec<i64> = d
            .occurrences(ns("2026-03-27T00:00:00"), ns("2026-03-31T00:00:00"))
            .iter()
            .map(|o| o.0)
            .collect();
        assert_eq!(
            starts,
            vec![
                ns("2026-03-27T01:30:00"),
                ns("2026-03-28T01:30:00"),
                ns("2026-03-29T01:00:00"),
                ns("2026-03-30T00:30:00"),
            ]
        );
    }

    #[test]
    fn start_in_dst_fold_takes_the_earlier_instant() {
        // 2026-10-25 in Berlin: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        let w = window("2026-10-25T02:30:00", 1, chrono_tz::Europe::Berlin, Recurrence::Once);
        assert_eq!(
            w.occurrences(i64::MIN, i64::MAX),
            vec![(ns("2026-10-25T00:30:00"), ns("2026-10-25T01:30:00"))]
        );
        assert!(w.contains(ns("2026-10-25T00:30:00")));
        assert!(!w.contains(ns("2026-10-25T01:30:00")));
    }

    #[test]
    fn contains_is_half_open_even_far_from_start() {
        let w = window(
            "2000-01-03T01:00:00",
            2,
            chrono_tz::America::New_York,
            Recurrence::Weekly,
        );
        // 2026-06-01 is a Monday, like 2000-01-03; 01:00 EDT = 05:00 UTC.
        let s = ns("2026-06-01T05:00:00");
        let e = s + 2 * HOUR;
        assert!(w.contains(s));
        assert!(w.contains(e - 1));
        assert!(!w.contains(e));
        assert!(!w.contains(s - 1));
        assert!(!w.contains(s + 24 * HOUR));
        // Before the first occurrence nothing matches.
        assert!(!w.contains(ns("1999-12-27T06:00:00")));
        // Once window: exact bounds.
        let o = window("2026-11-01T02:00:00", 2, Tz::UTC, Recurrence::Once);
        assert!(o.contains(ns("2026-11-01T02:00:00")));
        assert!(!o.contains(ns("2026-11-01T04:00:00")));
    }

    #[test]
    fn covers_matches_services_and_cis_but_never_empty_strings() {
        let mut w = window("2026-11-01T02:00:00", 2, Tz::UTC, Recurrence::Once);
        assert!(w.covers("billing", ""));
        assert!(w.covers("", "db-01"));
        assert!(w.covers("other", "db-01"));
        assert!(w.covers("billing", "other"));
        assert!(!w.covers("other", "other"));
        assert!(!w.covers("Billing", "DB-01"));
        assert!(!w.covers("", ""));
        w.services.push(String::new());
        w.cis.push(String::new());
        assert!(!w.covers("", ""));
    }

    #[test]
    fn validate_reports_each_problem() {
        let ok = window("2026-11-01T02:00:00", 2, Tz::UTC, Recurrence::Daily);
        assert_eq!(ok.validate(), Ok(()));

        let mut w = ok.clone();
        w.name = "  ".to_string();
        assert!(w.validate().unwrap_err().contains("name"));

        let mut w = ok.clone();
        w.duration = Duration::ZERO;
        assert!(w.validate().unwrap_err().contains("duration"));

        let mut w = ok.clone();
        w.services.clear();
        w.cis = vec![String::new()];
        assert!(w.validate().unwrap_err().contains("service or CI"));
        w.cis = vec!["db-01".to_string()];
        assert_eq!(w.validate(), Ok(()));

        let mut w = ok.clone();
        w.duration = Duration::from_secs(24 * 3600);
        let err = w.validate().unwrap_err();
        assert!(err.contains("shorter") && err.contains("patching"), "{err}");

        w.recurrence = Recurrence::Weekly;
        assert_eq!(w.validate(), Ok(()));
        w.duration = Duration::from_secs(7 * 24 * 3600);
        assert!(w.validate().is_err());

        w.recurrence = Recurrence::Monthly;
        assert_eq!(w.validate(), Ok(()));
        w.duration = Duration::from_secs(28 * 24 * 3600);
        assert!(w.validate().is_err());
        w.duration = Duration::from_secs(28 * 24 * 3600 - 1);
        assert_eq!(w.validate(), Ok(()));

        // A once window may be longer than a day, but not beyond what i64 nanoseconds hold.
        w.recurrence = Recurrence::Once;
        w.duration = Duration::from_secs(40 * 24 * 3600);
        assert_eq!(w.validate(), Ok(()));
        w.duration = Duration::from_secs(u64::MAX);
        assert!(w.validate().unwrap_err().contains("too large"));
    }

    #[derive(Debug, Deserialize)]
    struct Config {
        maintenance: Vec<MaintenanceWindow>,
    }

    #[test]
    fn parses_toml_maintenance_array() {
        let text = r#"
            [[maintenance]]
            name = "db patching"
            services = ["billing", "crm"]
            start = "2026-11-01T02:00:00"
            duration = "2h 30m"
            timezone = "Europe/Berlin"
            recurrence = "weekly"
            until = "2027-03-31"

            [[maintenance]]
            name = "router swap"
            cis = ["rtr-7"]
            start = "2026-12-05T22:00:00"
            duration = "45m"
        "#;
        let cfg: Config = toml::from_str(text).unwrap();
        assert_eq!(cfg.maintenance.len(), 2);
        let a = &cfg.maintenance[0];
        assert_eq!(a.name, "db patching");
        assert_eq!(a.services, vec!["billing", "crm"]);
        assert!(a.cis.is_empty());
        assert_eq!(a.start, local("2026-11-01T02:00:00"));
        assert_eq!(a.duration, Duration::from_secs(9000));
        assert_eq!(a.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(a.recurrence, Recurrence::Weekly);
        assert_eq!(a.until, NaiveDate::from_ymd_opt(2027, 3, 31));
        assert_eq!(a.validate(), Ok(()));
        let b = &cfg.maintenance[1];
        assert_eq!(b.timezone, Tz::UTC);
        assert_eq!(b.recurrence, Recurrence::Once);
        assert_eq!(b.until, None);
        assert!(b.services.is_empty());
        assert_eq!(
            b.occurrences(i64::MIN, i64::MAX),
            vec![(ns("2026-12-05T22:00:00"), ns("2026-12-05T22:45:00"))]
        );

        let unknown = text.replace("cis = [\"rtr-7\"]", "cis = [\"rtr-7\"]\nowner = \"netops\"");
        let err = toml::from_str::<Config>(&unknown).unwrap_err().to_string();
        assert!(err.contains("owner"), "{err}");

        let bad_tz = text.replace("Europe/Berlin", "Europe/Atlantis");
        assert!(toml::from_str::<Config>(&bad_tz).is_err());
        let bad_rec = text.replace("\"weekly\"", "\"yearly\"");
        assert!(toml::from_str::<Config>(&bad_rec).is_err());
    }

    #[test]
    fn huge_ranges_are_capped_without_panic() {
        let w = window("1700-01-01T00:00:00", 1, Tz::UTC, Recurrence::Daily);
        let occ = w.occurrences(i64::MIN, i64::MAX);
        assert_eq!(occ.len(), MAX_OCCURRENCES);
        assert_eq!(occ[0], (ns("1700-01-01T00:00:00"), ns("1700-01-01T01:00:00")));
        assert_eq!(
            occ[MAX_OCCURRENCES - 1].0,
            ns("1700-01-01T00:00:00") + 99_999 * 24 * HOUR
        );
        assert!(occ.windows(2).all(|p| p[0].0 < p[1].0));
        assert!(!w.contains(i64::MIN));
        assert!(!w.contains(i64::MAX));

        // Weekly in a DST zone until the end of the representable range: fewer than the cap, stops cleanly.
        let wk = window("1990-01-01T02:30:00", 1, chrono_tz::Europe::Berlin, Recurrence::Weekly);
        let occ = wk.occurrences(i64::MIN, i64::MAX);
        assert!(occ.len() > 10_000 && occ.len() < MAX_OCCURRENCES, "{}", occ.len());

        // Starts far outside the i64 nanosecond range and absurd durations do not panic.
        let mut far = window("1200-06-15T12:00:00", 1, Tz::UTC, Recurrence::Monthly);
        far.duration = Duration::from_secs(u64::MAX);
        let occ = far.occurrences(i64::MIN, i64::MAX);
        // Only the starts from 1677-09 to 2262-04 are representable: about 7 000 months.
        assert!((6_900..7_100).contains(&occ.len()), "{}", occ.len());
        assert_eq!(occ[0].0, ns("1677-10-15T12:00:00"));
        assert!(occ.iter().all(|&(s, e)| e == s.saturating_add(i64::MAX)));
        assert!(far.contains(0));
        let mut future = window("2500-01-01T00:00:00", 1, Tz::UTC, Recurrence::Daily);
        assert!(future.occurrences(i64::MIN, i64::MAX).is_empty());
        future.recurrence = Recurrence::Once;
        assert!(!future.contains(i64::MAX));
    }
}
