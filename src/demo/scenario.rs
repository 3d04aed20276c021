//! The script: the month's episodes (alerts, when they fire and resolve, what the engines
//! should make of them) and the degradations they stand for in the traffic. Everything the
//! generator sends and the oracle counts follows from this one description, so that a change
//! to the story is a change here alone (and to the module comment that tells it).

use chrono::{Datelike, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;

use super::month::Month;
use super::traffic::TRAFFIC;
use super::{DemoError, HOUR, MINUTE};
use crate::config::Config;
use crate::time::NS_PER_SEC;

/// Which monitoring system reports an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Alertmanager,
    Zabbix,
    Datadog,
}

impl Source {
    pub(super) fn name(self) -> &'static str {
        match self {
            Source::Alertmanager => "Alertmanager",
            Source::Zabbix => "Zabbix",
            Source::Datadog => "Datadog",
        }
    }
}

/// What the engines should make of an episode's alert (part of the script: a priority is
/// what the CMDB and the severity imply, documented with each episode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Opens an incident; an outage incident is downtime of its service.
    Incident { priority: u8, major: bool, outage: bool },
    /// Joins the incident open on an upstream CI when it fires.
    Symptom,
    /// Inside a maintenance window: suppressed, no incident (its recovery then matches nothing).
    Suppressed,
}

/// One scripted alert: fires at `start_ns` (notified `notifications` times) and resolves at
/// `end_ns`.
#[derive(Debug, Clone)]
pub struct Episode {
    /// For the incidents table.
    pub what: &'static str,
    pub service: &'static str,
    pub source: Source,
    /// Alert name, as the source names it.
    pub alert: &'static str,
    pub ci: &'static str,
    /// Severity as the source words it (Zabbix severity name, Alertmanager label, Datadog priority).
    pub severity: &'static str,
    pub summary: &'static str,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Firing notifications sent, the first included: re-sends are duplicates.
    pub notifications: u32,
    /// Time between re-sends.
    pub repeat_every_ns: i64,
    pub outcome: Outcome,
}

/// How a service's requests change during an interval.
#[derive(Debug, Clone, Copy)]
pub(super) enum Effect {
    /// Latency times this factor.
    Slow(f64),
    /// Requests fail with this HTTP status after about this many ms.
    Fail { status: u16, ms: f64 },
}

/// What an episode does to a service's requests while it lasts.
#[derive(Debug, Clone)]
pub(super) struct Degradation {
    pub(super) service: &'static str,
    /// One resource, or all of the service's.
    pub(super) resource: Option<&'static str>,
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) effect: Effect,
}

/// One month of the script, in the configuration's time zones.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub month: Month,
    /// Where the script's local times are: the contracts' zone.
    pub tz: Tz,
    /// The Zabbix server's zone, for the dates and times in its webhooks.
    pub(super) zabbix_tz: Tz,
    /// The month in `tz`, [start, end) in ns.
    pub start_ns: i64,
    pub end_ns: i64,
    pub episodes: Vec<Episode>,
    pub(super) degradations: Vec<Degradation>,
    /// The local days of the month, [start, end) in ns (23 or 25 hours on DST days).
    pub(super) days: Vec<(NaiveDate, i64, i64)>,
}

/// The zone of the script's local times: the first demo service's contract's, else UTC.
pub(super) fn site_tz(config: &Config) -> Tz {
    config
        .sla
        .contracts
        .iter()
        .find(|c| TRAFFIC.iter().any(|t| t.service == c.service))
        .map_or(chrono_tz::UTC, |c| c.timezone)
}

/// A local wall-clock time as ns (the earlier instant in a DST fold).
fn local_ns(tz: Tz, date: NaiveDate, h: u32, m: u32) -> Result<i64, DemoError> {
    date.and_hms_opt(h, m, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| DemoError::Script(format!("{date} {h:02}:{m:02} does not exist in {tz}")))
}

/// An incident that is neither major nor downtime.
const fn minor(priority: u8) -> Outcome {
    Outcome::Incident {
        priority,
        major: false,
        outage: false,
    }
}

/// A major incident that is downtime of its service.
const MAJOR_OUTAGE: Outcome = Outcome::Incident {
    priority: 1,
    major: true,
    outage: true,
};

impl Scenario {
    /// The month's script in the time zones of `config` (the contracts', else UTC, and the
    /// Zabbix decoder's).
    pub fn new(config: &Config, month: Month) -> Result<Scenario, DemoError> {
        let tz = site_tz(config);
        let zabbix_tz = config.decoders.zabbix_webhook.timezone;
        let first = month.first_day().ok_or_else(|| DemoError::Month(month.to_string()))?;
        let next = month
            .next()
            .first_day()
            .ok_or_else(|| DemoError::Month(month.to_string()))?;
        let mut days = Vec::new();
        let mut date = first;
        while date < next {
            let after = date
                .succ_opt()
                .ok_or_else(|| DemoError::Script(format!("no day after {date}")))?;
            days.push((date, local_ns(tz, date, 0, 0)?, local_ns(tz, after, 0, 0)?));
            date = after;
        }
        let mut scenario = Scenario {
            month,
            tz,
            zabbix_tz,
            start_ns: local_ns(tz, first, 0, 0)?,
            end_ns: local_ns(tz, next, 0, 0)?,
            episodes: Vec::new(),
            degradations: Vec::new(),
            days,
        };
        scenario.script(config)?;
        Ok(scenario)
    }

    fn date(&self, day: u32) -> Result<NaiveDate, DemoError> {
        NaiveDate::from_ymd_opt(self.month.year, self.month.month, day)
            .ok_or_else(|| DemoError::Script(format!("{} has no day {day}", self.month)))
    }

    fn at(&self, day: u32, h: u32, m: u32) -> Result<i64, DemoError> {
        local_ns(self.tz, self.date(day)?, h, m)
    }

    /// The first of the three slow search days: the Tuesday on or after the 15th, so that
    /// they are three consecutive working days in every month.
    pub fn slow_days_start(&self) -> Result<NaiveDate, DemoError> {
        let mut date = self.date(15)?;
        while date.weekday() != Weekday::Tue {
            date = date.succ_opt().ok_or_else(|| DemoError::Script("no Tuesday".into()))?;
        }
        Ok(date)
    }

    /// The episodes and what they do to traffic (see the module comment), in the order they
    /// fire; each must lie inside the month.
    fn script(&mut self, config: &Config) -> Result<(), DemoError> {
        self.memory_warning()?;
        self.duplicate_storm()?;
        self.site_down()?;
        self.database_down_in_maintenance(config);
        self.slow_search_days()?;
        self.payments_down()?;
        self.checkout_failing()?;
        self.episodes.sort_by_key(|e| e.start_ns);
        for e in &self.episodes {
            if e.start_ns < self.start_ns || e.end_ns >= self.end_ns || e.end_ns <= e.start_ns {
                return Err(DemoError::Script(format!(
                    "{} ({}) is not inside {}",
                    e.alert, e.what, self.month
                )));
            }
        }
        Ok(())
    }

    /// Degrades all of `service`'s requests (or `resource`'s) for the episode's time.
    fn degrade(&mut self, service: &'static str, resource: Option<&'static str>, span: (i64, i64), effect: Effect) {
        let (from, to) = span;
        self.degradations.push(Degradation {
            service,
            resource,
            from,
            to,
            effect,
        });
    }

    /// Critical service × warning severity: high impact, medium urgency.
    fn memory_warning(&mut self) -> Result<(), DemoError> {
        let (start, end) = (self.at(3, 10, 0)?, self.at(3, 12, 0)?);
        self.episodes.push(Episode {
            what: "memory warning on a web server",
            service: "webshop",
            source: Source::Alertmanager,
            alert: "HighMemoryUsage",
            ci: "shop-web-2",
            severity: "warning",
            summary: "shop-web-2 memory usage above 90 %",
            start_ns: start,
            end_ns: end,
            notifications: 1,
            repeat_every_ns: 0,
            outcome: minor(2),
        });
        Ok(())
    }

    /// A misconfigured action step re-sends the problem every couple of seconds.
    fn duplicate_storm(&mut self) -> Result<(), DemoError> {
        let (start, end) = (self.at(6, 9, 12)?, self.at(6, 9, 31)?);
        self.episodes.push(Episode {
            what: "duplicate storm: one problem sent 500 times",
            service: "payments",
            source: Source::Zabbix,
            alert: "Payment gateway: response time too high",
            ci: "pay-api-2",
            severity: "Average",
            summary: "Payment gateway response time above 1 s for 5 minutes",
            start_ns: start,
            end_ns: end,
            notifications: 500,
            repeat_every_ns: 2 * NS_PER_SEC,
            outcome: minor(2),
        });
        self.degrade("payments", None, (start, end), Effect::Slow(6.0));
        Ok(())
    }

    /// The shop's outage: a P1 on a critical service is a major incident, and "Site down"
    /// is an outage alert of the contract besides.
    fn site_down(&mut self) -> Result<(), DemoError> {
        let (start, end) = (self.at(9, 14, 5)?, self.at(9, 15, 40)?);
        self.episodes.push(Episode {
            what: "site down for 95 minutes",
            service: "webshop",
            source: Source::Alertmanager,
            alert: "Site down",
            ci: "shop-lb",
            severity: "critical",
            summary: "https://shop.example.com does not answer",
            start_ns: start,
            end_ns: end,
            notifications: 4,
            repeat_every_ns: 30 * MINUTE,
            outcome: MAJOR_OUTAGE,
        });
        let effect = Effect::Fail {
            status: 503,
            ms: 2500.0,
        };
        self.degrade("webshop", None, (start, end), effect);
        Ok(())
    }

    /// Placed in the configured window rather than at a fixed time, so that it is inside one
    /// whatever the month and the config (and left out when no window covers payments).
    fn database_down_in_maintenance(&mut self, config: &Config) {
        let window = config
            .maintenance
            .iter()
            .filter(|w| w.covers("payments", ""))
            .flat_map(|w| w.occurrences(self.start_ns, self.end_ns))
            .filter(|&(s, e)| s >= self.start_ns && e <= self.end_ns)
            .min();
        let Some((from, to)) = window else {
            return;
        };
        let start = from + (40 * MINUTE).min((to - from) / 4);
        self.episodes.push(Episode {
            what: "database down during its patching window",
            service: "payments",
            source: Source::Zabbix,
            alert: "MySQL: Service is down",
            ci: "pay-db-1",
            severity: "Disaster",
            summary: "MySQL is not running on pay-db-1",
            start_ns: start,
            end_ns: start + (45 * MINUTE).min((to - from) / 2),
            notifications: 1,
            repeat_every_ns: 0,
            outcome: Outcome::Suppressed,
        });
    }

    /// Medium criticality, 300 users, monitor priority P3: medium × medium. The monitor
    /// fires each working day; the traffic stays slow through the nights between.
    fn slow_search_days(&mut self) -> Result<(), DemoError> {
        let first_slow = self.slow_days_start()?;
        let day = |offset: u64| {
            first_slow
                .checked_add_days(chrono::Days::new(offset))
                .ok_or_else(|| DemoError::Script("slow days past the calendar".into()))
        };
        for offset in 0..3u64 {
            let date = day(offset)?;
            self.episodes.push(Episode {
                what: "search slow all day",
                service: "search",
                source: Source::Datadog,
                alert: "Search p95 latency above 800 ms",
                ci: "search-api-1",
                severity: "P3",
                summary: "search p95 latency above 800 ms for 15 minutes",
                start_ns: local_ns(self.tz, date, 9, 10)?,
                end_ns: local_ns(self.tz, date, 17, 40)?,
                notifications: 4,
                repeat_every_ns: 2 * HOUR,
                outcome: minor(3),
            });
        }
        let slow_to = day(3)?;
        let days = (local_ns(self.tz, first_slow, 0, 0)?, local_ns(self.tz, slow_to, 0, 0)?);
        self.degrade("search", None, days, Effect::Slow(6.0));
        Ok(())
    }

    /// High criticality × disaster: P1, and 3000 users make it major.
    fn payments_down(&mut self) -> Result<(), DemoError> {
        let (start, end) = (self.at(21, 3, 10)?, self.at(21, 3, 35)?);
        self.episodes.push(Episode {
            what: "payments API down; checkout fails",
            service: "payments",
            source: Source::Zabbix,
            alert: "Payment API is down",
            ci: "pay-api-1",
            severity: "Disaster",
            summary: "Payment API health check failed",
            start_ns: start,
            end_ns: end,
            notifications: 1,
            repeat_every_ns: 0,
            outcome: MAJOR_OUTAGE,
        });
        let effect = Effect::Fail { status: 503, ms: 30.0 };
        self.degrade("payments", None, (start, end), effect);
        Ok(())
    }

    /// shop-web-1 depends on pay-api-1: its alert joins the payments incident. It resolves
    /// before the root cause does, so the incident ends with the payments recovery.
    fn checkout_failing(&mut self) -> Result<(), DemoError> {
        let (start, end) = (self.at(21, 3, 12)?, self.at(21, 3, 33)?);
        self.episodes.push(Episode {
            what: "checkout failing (symptom)",
            service: "webshop",
            source: Source::Alertmanager,
            alert: "CheckoutFailing",
            ci: "shop-web-1",
            severity: "warning",
            summary: "more than 20 % of checkouts fail",
            start_ns: start,
            end_ns: end,
            notifications: 1,
            repeat_every_ns: 0,
            outcome: Outcome::Symptom,
        });
        let effect = Effect::Fail {
            status: 502,
            ms: 1200.0,
        };
        self.degrade("webshop", Some("POST /checkout"), (start, end), effect);
        Ok(())
    }

    /// The month's local days, [start, end) in ns.
    pub fn days(&self) -> Vec<(i64, i64)> {
        self.days.iter().map(|&(_, s, e)| (s, e)).collect()
    }

    /// Length of the month in minutes (local: DST months are an hour longer or shorter).
    pub fn minutes(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / MINUTE as f64
    }
}
