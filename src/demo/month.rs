//! The calendar month the demo generates: parsed from `--month` or taken as the last full
//! month, and stepped to the next so that the script knows where its month ends. Kept apart
//! from the script because the entry point, the script and the printing all name months.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`; years where every local time of the script fits in i64 nanoseconds.
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let month = Month {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        ((1971..=2199).contains(&month.year) && (1..=12).contains(&month.month)).then_some(month)
    }

    /// The last full month before the wall clock's, in `tz`.
    pub fn previous(tz: Tz) -> Month {
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        match today.month() {
            1 => Month {
                year: today.year() - 1,
                month: 12,
            },
            m => Month {
                year: today.year(),
                month: m - 1,
            },
        }
    }

    pub(super) fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    pub(super) fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step() {
        assert_eq!(Month::parse("2026-10"), Some(Month { year: 2026, month: 10 }));
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-10"), None);
        assert_eq!(Month { year: 2026, month: 12 }.next(), Month { year: 2027, month: 1 });
    }
}
