//! `slaflow demo`: a scripted month of Zabbix, Alertmanager and Datadog traffic for three
//! services, generated as wire payloads and run through the real decoders, engines and the
//! embedded store while /metrics and the report API are served. This module owns the script
//! (`Scenario`), the figures the script implies (`Expected`), and the run that prints both.
//!
//! The script, in the demo config's time zone (examples/demo.toml, Europe/Berlin):
//! - all month: three requests a minute per service (Datadog APM traces, jittered latency);
//! - day 3, 10:00–12:00: memory warning on a shop web server (Alertmanager) → P2;
//! - day 6, 09:12–09:31: one Zabbix problem on payments sent 500 times → one P2 incident,
//!   499 duplicates; payments is six times slower meanwhile;
//! - day 9, 14:05–15:40: "Site down" for the shop (Alertmanager, re-sent every 30 min) → P1,
//!   95 minutes of downtime: over the 1-hour limit, availability under 99.9 %, a credit;
//! - 40 minutes into payments' maintenance window (demo.toml: the 14th, 22:00–01:00), its
//!   database is down for 45 minutes → suppressed, and the window's 3 hours are excluded
//!   from payments' availability (no window that month: no such alert);
//! - the Tuesday to Thursday from the 15th on: search six times slower all day (a Datadog
//!   monitor triggers each day, re-notifies every 2 h) → three P3 incidents, the slow-days
//!   streak warning, and a missed p95;
//! - day 21, 03:10–03:35: payments API down (Zabbix, disaster) → P1, 25 minutes of downtime;
//!   the shop's checkout fails meanwhile and its alert joins that incident as a symptom.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, ConfigError, StoreKind};
use crate::decode::{alertmanager, DecodeError, Decoders, Format};
use crate::engine::correlate::Stats;
use crate::engine::reorder::event_time;
use crate::engine::sla::config::{Contract, Granularity, ObjectiveKind};
use crate::engine::sla::{Report, SlaOutput, SlaStats};
use crate::metrics::metrics;
use crate::model::Event;
use crate::replay::{Engines, Record, ReplayError};
use crate::report::{render, ReportFormat};
use crate::server::{self, AppState, Intake};
use crate::sinks::{Batch, IncidentRow, SinkError, Store};
use crate::time::NS_PER_SEC;

/// The demo's configuration, embedded so that the demo needs no file.
pub const CONFIG: &str = include_str!("../examples/demo.toml");

const MINUTE: i64 = 60 * NS_PER_SEC;
const HOUR: i64 = 60 * MINUTE;
/// Seeds the generator: the same month always gives the same bytes.
const SEED: u64 = 0x51af_10e0_2026_0001;
/// Records per store transaction, as `replay --sink` writes them.
const BATCH_RECORDS: usize = 1000;
/// Minutes of traces per APM payload and service (a tracer flushes far more often; fewer,
/// larger payloads keep a month's event count the same and the demo quick).
const APM_PAYLOAD_MINUTES: i64 = 10;

/// A service's steady traffic: one request of each resource per minute.
struct Traffic {
    service: &'static str,
    /// Resource and its typical latency in ms; actual latency is 0.6 to 1.4 times that.
    resources: [(&'static str, f64); 3],
}

const TRAFFIC: [Traffic; 3] = [
    Traffic {
        service: "webshop",
        resources: [("GET /products", 140.0), ("GET /cart", 90.0), ("POST /checkout", 420.0)],
    },
    Traffic {
        service: "payments",
        resources: [
            ("POST /v1/authorize", 260.0),
            ("POST /v1/capture", 190.0),
            ("GET /v1/payments/{id}", 45.0),
        ],
    },
    Traffic {
        service: "search",
        resources: [
            ("GET /search", 220.0),
            ("GET /search/suggest", 70.0),
            ("GET /search/facets", 150.0),
        ],
    },
];

/// Seconds into each minute at which the three requests start (plus up to 9 s of jitter),
/// so that a span's minute decides which scripted interval it falls in.
const OFFSETS_S: [i64; 3] = [5, 25, 45];

/// The demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--month: expected YYYY-MM (1971-01 to 2199-12), found {0:?}")]
    Month(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the script: {0}")]
    Script(String),
    /// A generated payload the real decoder rejects: a bug in the generator or the decoder.
    #[error("a generated {format} payload does not decode: {error}")]
    Decode { format: Format, error: DecodeError },
    #[error("engines: {0}")]
    Engines(#[from] ReplayError),
    #[error("store: {0}")]
    Store(#[from] SinkError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("listen on {addr}: {source} (choose another address with --listen, e.g. 127.0.0.1:0)")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Task(String),
}

// ---- the month ---------------------------------------------------------------------------

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

    fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    fn next(self) -> Month {
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

// ---- the script --------------------------------------------------------------------------

/// Which monitoring system reports an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Alertmanager,
    Zabbix,
    Datadog,
}

impl Source {
    fn name(self) -> &'static str {
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
enum Effect {
    /// Latency times this factor.
    Slow(f64),
    /// Requests fail with this HTTP status after about this many ms.
    Fail { status: u16, ms: f64 },
}

#[derive(Debug, Clone)]
struct Degradation {
    service: &'static str,
    /// One resource, or all of the service's.
    resource: Option<&'static str>,
    from: i64,
    to: i64,
    effect: Effect,
}

/// One request as its span says.
#[derive(Debug, Clone, Copy)]
struct Span {
    resource: usize,
    start_ns: i64,
    duration_ns: i64,
    error: bool,
    status: u16,
    trace_id: u64,
    span_id: u64,
}

/// A payload in its wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub format: Format,
    pub bytes: Vec<u8>,
}

/// One month of the script, in the configuration's time zones.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub month: Month,
    /// Where the script's local times are: the contracts' zone.
    pub tz: Tz,
    /// The Zabbix server's zone, for the dates and times in its webhooks.
    zabbix_tz: Tz,
    /// The month in `tz`, [start, end) in ns.
    pub start_ns: i64,
    pub end_ns: i64,
    pub episodes: Vec<Episode>,
    degradations: Vec<Degradation>,
    /// The local days of the month, [start, end) in ns (23 or 25 hours on DST days).
    days: Vec<(NaiveDate, i64, i64)>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from 53 random bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The zone of the script's local times: the first demo service's contract's, else UTC.
fn site_tz(config: &Config) -> Tz {
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

    /// The episodes and what they do to traffic (see the module comment).
    fn script(&mut self, config: &Config) -> Result<(), DemoError> {
        let mut episodes = Vec::new();
        let mut degradations = Vec::new();

        // Critical service × warning severity: high impact, medium urgency.
        episodes.push(Episode {
            what: "memory warning on a web server",
            service: "webshop",
            source: Source::Alertmanager,
            alert: "HighMemoryUsage",
            ci: "shop-web-2",
            severity: "warning",
            summary: "shop-web-2 memory usage above 90 %",
            start_ns: self.at(3, 10, 0)?,
            end_ns: self.at(3, 12, 0)?,
            notifications: 1,
            repeat_every_ns: 0,
            outcome: Outcome::Incident {
                priority: 2,
                major: false,
                outage: false,
            },
        });

        // A misconfigured action step re-sends the problem every couple of seconds.
        let (start, end) = (self.at(6, 9, 12)?, self.at(6, 9, 31)?);
        episodes.push(Episode {
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
            outcome: Outcome::Incident {
                priority: 2,
                major: false,
                outage: false,
            },
        });
        degradations.push(Degradation {
            service: "payments",
            resource: None,
            from: start,
            to: end,
            effect: Effect::Slow(6.0),
        });

        // The shop's outage: a P1 on a critical service is a major incident, and "Site down"
        // is an outage alert of the contract besides.
        let (start, end) = (self.at(9, 14, 5)?, self.at(9, 15, 40)?);
        episodes.push(Episode {
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
            outcome: Outcome::Incident {
                priority: 1,
                major: true,
                outage: true,
            },
        });
        degradations.push(Degradation {
            service: "webshop",
            resource: None,
            from: start,
            to: end,
            effect: Effect::Fail {
                status: 503,
                ms: 2500.0,
            },
        });

        // Placed in the configured window rather than at a fixed time, so that it is inside one
        // whatever the month and the config (and left out when no window covers payments).
        let window = config
            .maintenance
            .iter()
            .filter(|w| w.covers("payments", ""))
            .flat_map(|w| w.occurrences(self.start_ns, self.end_ns))
            .filter(|&(s, e)| s >= self.start_ns && e <= self.end_ns)
            .min();
        if let Some((from, to)) = window {
            let start = from + (40 * MINUTE).min((to - from) / 4);
            episodes.push(Episode {
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

        // Medium criticality, 300 users, monitor priority P3: medium × medium.
        let first_slow = self.slow_days_start()?;
        for offset in 0..3u64 {
            let date = first_slow
                .checked_add_days(chrono::Days::new(offset))
                .ok_or_else(|| DemoError::Script("slow days past the calendar".into()))?;
            episodes.push(Episode {
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
                outcome: Outcome::Incident {
                    priority: 3,
                    major: false,
                    outage: false,
                },
            });
        }
        let slow_to = first_slow
            .checked_add_days(chrono::Days::new(3))
            .ok_or_else(|| DemoError::Script("slow days past the calendar".into()))?;
        degradations.push(Degradation {
            service: "search",
            resource: None,
            from: local_ns(self.tz, first_slow, 0, 0)?,
            to: local_ns(self.tz, slow_to, 0, 0)?,
            effect: Effect::Slow(6.0),
        });

        // High criticality × disaster: P1, and 3000 users make it major.
        let (start, end) = (self.at(21, 3, 10)?, self.at(21, 3, 35)?);
        episodes.push(Episode {
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
            outcome: Outcome::Incident {
                priority: 1,
                major: true,
                outage: true,
            },
        });
        degradations.push(Degradation {
            service: "payments",
            resource: None,
            from: start,
            to: end,
            effect: Effect::Fail { status: 503, ms: 30.0 },
        });
        // shop-web-1 depends on pay-api-1: its alert joins the payments incident. It resolves
        // before the root cause does, so the incident ends with the payments recovery.
        let (start, end) = (self.at(21, 3, 12)?, self.at(21, 3, 33)?);
        episodes.push(Episode {
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
        degradations.push(Degradation {
            service: "webshop",
            resource: Some("POST /checkout"),
            from: start,
            to: end,
            effect: Effect::Fail {
                status: 502,
                ms: 1200.0,
            },
        });

        episodes.sort_by_key(|e| e.start_ns);
        for e in &episodes {
            if e.start_ns < self.start_ns || e.end_ns >= self.end_ns || e.end_ns <= e.start_ns {
                return Err(DemoError::Script(format!(
                    "{} ({}) is not inside {}",
                    e.alert, e.what, self.month
                )));
            }
        }
        self.episodes = episodes;
        self.degradations = degradations;
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

    fn noise(&self, a: u64, b: u64, c: u64) -> u64 {
        splitmix(SEED ^ splitmix(a ^ splitmix(b ^ splitmix(c))))
    }

    /// The request of `slot` in the minute starting at `minute` of service `s`: a pure
    /// function of those, so spans can be generated (or recounted) in any order.
    fn span(&self, s: usize, minute: i64, slot: usize) -> Span {
        let r = |k: u64| self.noise(s as u64, minute as u64, ((slot as u64) << 8) | k);
        let start_ns = minute + (OFFSETS_S[slot] + (r(0) % 10) as i64) * NS_PER_SEC + (r(1) % 1_000_000) as i64 * 1000;
        let jitter = 0.6 + 0.8 * unit(r(2));
        let (resource, base) = TRAFFIC[s].resources[slot];
        let effect = self
            .degradations
            .iter()
            .find(|d| {
                d.service == TRAFFIC[s].service
                    && d.resource.is_none_or(|r| r == resource)
                    && (d.from..d.to).contains(&start_ns)
            })
            .map(|d| d.effect);
        let (ms, error, status) = match effect {
            None => (base * jitter, false, 200),
            Some(Effect::Slow(factor)) => (base * factor * jitter, false, 200),
            Some(Effect::Fail { status, ms }) => (ms * jitter, true, status),
        };
        Span {
            resource: slot,
            start_ns,
            // Tracers measure in ns; microseconds keep the figures readable.
            duration_ns: (ms * 1000.0).round() as i64 * 1000,
            error,
            status,
            trace_id: r(3) >> 1,
            span_id: r(4) >> 1,
        }
    }

    /// Every span of service `s` whose minute starts in [from, to).
    fn spans(&self, s: usize, from: i64, to: i64) -> impl Iterator<Item = Span> + '_ {
        (0..)
            .map(move |i| from + i * MINUTE)
            .take_while(move |&m| m < to)
            .flat_map(move |m| (0..3).map(move |slot| self.span(s, m, slot)))
    }

    /// Datadog APM payloads (`/v0.4/traces` JSON: an array of traces, each an array of spans)
    /// of every service for the minutes in [from, to), one per service and ten minutes.
    pub fn apm_payloads(&self, from: i64, to: i64) -> Vec<Payload> {
        let mut out = Vec::new();
        for (s, traffic) in TRAFFIC.iter().enumerate() {
            let mut block = from;
            while block < to {
                let end = (block + APM_PAYLOAD_MINUTES * MINUTE).min(to);
                let mut text = String::with_capacity(30 * 330);
                text.push('[');
                for (i, span) in self.spans(s, block, end).enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    let resource = traffic.resources[span.resource].0;
                    let method = resource.split(' ').next().unwrap_or("GET");
                    // Writing to a String cannot fail.
                    let _ = write!(
                        text,
                        "[{{\"trace_id\":{},\"span_id\":{},\"parent_id\":0,\"name\":\"http.request\",\
                         \"resource\":\"{resource}\",\"service\":\"{}\",\"type\":\"web\",\"start\":{},\
                         \"duration\":{},\"error\":{},\"meta\":{{\"env\":\"prod\",\"http.method\":\"{method}\",\
                         \"http.status_code\":\"{}\",\"version\":\"2026.10.3\"}},\
                         \"metrics\":{{\"_sampling_priority_v1\":1,\"_dd.top_level\":1}}}}]",
                        span.trace_id,
                        span.span_id,
                        traffic.service,
                        span.start_ns,
                        span.duration_ns,
                        u8::from(span.error),
                        span.status,
                    );
                }
                text.push(']');
                out.push(Payload {
                    format: Format::DatadogApm,
                    bytes: text.into_bytes(),
                });
                block = end;
            }
        }
        out
    }

    /// Every alert notification of the month, in the order the sources send them.
    pub fn alert_payloads(&self) -> Vec<Payload> {
        let mut out = Vec::new();
        for (i, e) in self.episodes.iter().enumerate() {
            let (format, firing): (Format, Vec<serde_json::Value>) = match e.source {
                Source::Alertmanager => (
                    Format::Alertmanager,
                    // Alertmanager's repeats carry the alert's start, like the first.
                    (0..e.notifications).map(|_| self.alertmanager(e, false)).collect(),
                ),
                // Zabbix's {EVENT.DATE} {EVENT.TIME} are the problem's start in every re-send.
                Source::Zabbix => (
                    Format::ZabbixWebhook,
                    (0..e.notifications).map(|_| self.zabbix(i, e, false)).collect(),
                ),
                Source::Datadog => (
                    Format::DatadogWebhook,
                    (0..e.notifications)
                        .map(|n| {
                            let transition = if n == 0 { "Triggered" } else { "Renotify" };
                            self.datadog(i, e, transition, e.start_ns + i64::from(n) * e.repeat_every_ns)
                        })
                        .collect(),
                ),
            };
            let resolved = match e.source {
                Source::Alertmanager => self.alertmanager(e, true),
                Source::Zabbix => self.zabbix(i, e, true),
                Source::Datadog => self.datadog(i, e, "Recovered", e.end_ns),
            };
            for body in firing.into_iter().chain(std::iter::once(resolved)) {
                out.push(Payload {
                    format,
                    bytes: body.to_string().into_bytes(),
                });
            }
        }
        out
    }

    /// An Alertmanager webhook (version 4) for one alert.
    fn alertmanager(&self, e: &Episode, resolved: bool) -> serde_json::Value {
        let (instance, job) = if e.alert == "Site down" {
            ("https://shop.example.com/health", "blackbox")
        } else {
            (e.ci, "node")
        };
        // Prometheus adds no `ci` label by itself; a relabelling rule sets it to the CMDB name.
        let labels: BTreeMap<String, String> = [
            ("alertname", e.alert),
            ("ci", e.ci),
            ("env", "prod"),
            ("instance", instance),
            ("job", job),
            ("service", e.service),
            ("severity", e.severity),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let fingerprint = format!("{:016x}", alertmanager::label_set_fingerprint(&labels));
        let status = if resolved { "resolved" } else { "firing" };
        let ends_at = if resolved {
            crate::time::to_rfc3339(e.end_ns)
        } else {
            "0001-01-01T00:00:00Z".to_string()
        };
        let annotations = json!({ "summary": e.summary, "runbook_url": "https://runbooks.example.com/shop" });
        json!({
            "receiver": "slaflow",
            "status": status,
            "alerts": [{
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": crate::time::to_rfc3339(e.start_ns),
                "endsAt": ends_at,
                "generatorURL": format!("http://prometheus.example.internal:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{}%22%7D", e.alert.replace(' ', "%20")),
                "fingerprint": fingerprint,
            }],
            "groupLabels": { "alertname": e.alert },
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager.example.internal:9093",
            "version": "4",
            "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.alert),
            "truncatedAlerts": 0,
        })
    }

    /// The body Zabbix's "Event-Driven Ansible" media type posts (the decoder's default mapping).
    fn zabbix(&self, i: usize, e: &Episode, recovery: bool) -> serde_json::Value {
        let local = |ns: i64| DateTime::from_timestamp_nanos(ns).with_timezone(&self.zabbix_tz);
        let start = local(e.start_ns);
        let end = local(e.end_ns);
        let event_id = 700_000 + self.noise(i as u64, 1, 0) % 100_000;
        let nseverity = match e.severity {
            "Disaster" => 5,
            "High" => 4,
            "Average" => 3,
            "Warning" => 2,
            _ => 1,
        };
        let minutes = (e.end_ns - e.start_ns) / MINUTE;
        let mut body = json!({
            "HTTPProxy": "",
            "acknowledged": "No",
            "endpoint": "/v1/ingest/zabbix-webhook",
            "event_date": start.format("%Y.%m.%d").to_string(),
            "event_time": start.format("%H:%M:%S").to_string(),
            "event_datetime_timestamp": e.start_ns / NS_PER_SEC,
            "event_id": event_id,
            "event_name": e.alert,
            "event_nseverity": nseverity,
            "event_object": 0,
            "event_severity": e.severity,
            "event_source": 0,
            "event_tags": { "service": [e.service], "scope": ["availability"] },
            "event_update": 0,
            "event_value": if recovery { 0 } else { 1 },
            // In a problem message Zabbix leaves the recovery macros unexpanded.
            "event_recovery_date": if recovery { end.format("%Y.%m.%d").to_string() } else { "{EVENT.RECOVERY.DATE}".into() },
            "event_recovery_time": if recovery { end.format("%H:%M:%S").to_string() } else { "{EVENT.RECOVERY.TIME}".into() },
            "host_groups": ["Payments", "Linux servers"],
            "host_host": e.ci,
            "host_id": 10600 + (self.noise(i as u64, 2, 0) % 100),
            "host_ip": format!("10.20.1.{}", 10 + self.noise(i as u64, 3, 0) % 40),
            "host_port": "10050",
            "monitoring_source": "Zabbix server",
            "operation_data": e.summary,
            "send_to": "slaflow",
            "trigger_description": e.summary,
            "trigger_id": 24000 + (self.noise(i as u64, 4, 0) % 1000),
            "trigger_name": e.alert,
        });
        body["subject"] = if recovery {
            json!(format!("Resolved in {minutes}m 0s: {}", e.alert))
        } else {
            json!(format!("Problem: {}", e.alert))
        };
        body
    }

    /// A Datadog monitor webhook with the usual template variables filled in.
    fn datadog(&self, i: usize, e: &Episode, transition: &str, at_ns: i64) -> serde_json::Value {
        let monitor = 88_120_000 + self.noise(0, 5, 0) % 1000;
        let cycle = format!("{:x}", self.noise(i as u64, 6, 0));
        let ms = (at_ns / 1_000_000).to_string();
        let title_word = if transition == "Renotify" {
            "Triggered"
        } else {
            transition
        };
        json!({
            "id": (self.noise(i as u64, 7, at_ns as u64) >> 2).to_string(),
            "last_updated": ms,
            "date": ms,
            "event_type": "query_alert_monitor",
            "title": format!("[{title_word} on {{host:{}}}] {}", e.ci, e.alert),
            "alert_title": e.alert,
            "alert_transition": transition,
            "alert_id": monitor.to_string(),
            "alert_cycle_key": cycle,
            "alert_priority": e.severity,
            "alert_scope": format!("host:{}", e.ci),
            "hostname": e.ci,
            "org": { "id": "1200345", "name": "example-shop" },
            "tags": format!("env:prod,service:{},team:discovery", e.service),
            "body": format!("%%%\n{}\n\n@webhook-slaflow\n%%%", e.summary),
            "link": format!("https://app.datadoghq.eu/monitors/{monitor}?from_ts={}&to_ts={}", ms, ms),
        })
    }

    // ---- what the script implies ---------------------------------------------------------

    /// The figures the script implies for the month under `config`'s contracts, counted from
    /// the script itself (its intervals and its spans), not by running the engines.
    ///
    /// Assumes contracts without business hours; maintenance comes from `config`.
    pub fn expected(&self, config: &Config) -> Expected {
        let mut services = Vec::new();
        for (s, traffic) in TRAFFIC.iter().enumerate() {
            if let Some(contract) = config.sla.contracts.iter().find(|c| c.service == traffic.service) {
                services.push(self.expected_service(config, s, contract));
            }
        }
        let mut incidents: Vec<ExpectedIncident> = Vec::new();
        let (mut duplicates, mut suppressed, mut unmatched, mut alerts) = (0u64, 0u64, 0u64, 0u64);
        for e in &self.episodes {
            alerts += u64::from(e.notifications) + 1;
            match e.outcome {
                Outcome::Incident { priority, major, .. } => {
                    duplicates += u64::from(e.notifications.saturating_sub(1));
                    incidents.push(ExpectedIncident {
                        service: e.service.to_string(),
                        what: e.what.to_string(),
                        source: e.source,
                        opened_ns: e.start_ns,
                        resolved_ns: e.end_ns,
                        priority,
                        major,
                        alerts: 1,
                        notifications: u64::from(e.notifications),
                    });
                }
                Outcome::Symptom => {
                    duplicates += u64::from(e.notifications.saturating_sub(1));
                    // Its root: the incident open when it fires (the latest, if several).
                    let root = incidents
                        .iter_mut()
                        .rev()
                        .find(|i| i.opened_ns <= e.start_ns && e.start_ns < i.resolved_ns);
                    if let Some(root) = root {
                        root.alerts += 1;
                        root.notifications += u64::from(e.notifications);
                        root.resolved_ns = root.resolved_ns.max(e.end_ns);
                    }
                }
                Outcome::Suppressed => {
                    suppressed += 1;
                    unmatched += 1;
                }
            }
        }
        incidents.sort_by_key(|i| i.opened_ns);
        Expected {
            month: self.month.to_string(),
            timezone: self.tz.name().to_string(),
            month_minutes: self.minutes(),
            // The engine counts the samples of contracted services only.
            samples: services.iter().map(|s| s.requests).sum(),
            services,
            incidents,
            alerts,
            duplicates,
            suppressed,
            unmatched,
        }
    }

    fn expected_service(&self, config: &Config, s: usize, contract: &Contract) -> ExpectedService {
        let service = TRAFFIC[s].service;
        let spans: Vec<Span> = self.spans(s, self.start_ns, self.end_ns).collect();
        let maintenance = union(
            config
                .maintenance
                .iter()
                .filter(|w| w.covers(service, ""))
                .flat_map(|w| w.occurrences(self.start_ns, self.end_ns))
                .map(|(a, b)| (a.max(self.start_ns), b.min(self.end_ns)))
                .filter(|(a, b)| a < b)
                .collect(),
        );
        let outages = self
            .episodes
            .iter()
            .filter(|e| e.service == service && matches!(e.outcome, Outcome::Incident { outage: true, .. }))
            .map(|e| (e.start_ns, e.end_ns))
            .collect();
        let downtime = subtract(&union(outages), &maintenance);
        let total = |set: &[(i64, i64)]| set.iter().map(|(a, b)| b - a).sum::<i64>();
        let eligible = (self.end_ns - self.start_ns) - total(&maintenance);
        let down = total(&downtime);
        let longest = downtime.iter().map(|(a, b)| b - a).max().unwrap_or(0);
        let availability = if eligible > 0 {
            (1.0 - down as f64 / eligible as f64) * 100.0
        } else {
            100.0
        };
        let requests = spans.len() as u64;
        let errors = spans.iter().filter(|x| x.error).count() as u64;
        let resource_of = |op: &str| TRAFFIC[s].resources.iter().position(|(r, _)| *r == op);
        let mut objectives = Vec::new();
        let (mut credit, mut breaches, mut streak_warnings) = (0.0f64, 0u32, 0u32);
        for obj in &contract.objectives {
            let selected: Vec<&Span> = match obj.operation.as_deref() {
                Some(op) => spans.iter().filter(|x| Some(x.resource) == resource_of(op)).collect(),
                None => spans.iter().collect(),
            };
            let threshold_ns = obj.threshold_ns();
            let (measured, met) = match obj.kind {
                ObjectiveKind::Availability => {
                    let target = obj.target.unwrap_or(100.0);
                    let allowed = (1.0 - obj.target_fraction()) * eligible as f64;
                    if allowed > 0.0 && down as f64 / allowed * 100.0 >= config.sla.budget_breach {
                        breaches += 1;
                    }
                    (availability, availability >= target)
                }
                ObjectiveKind::RequestAvailability => {
                    let n = selected.len() as f64;
                    let bad = selected.iter().filter(|x| x.error).count() as f64;
                    let level = if n > 0.0 { (1.0 - bad / n) * 100.0 } else { 100.0 };
                    // The budget is the month's requests so far, judged minute by minute: an
                    // outage early in the month can exhaust it although the month ends met.
                    let allowed = 1.0 - obj.target_fraction();
                    let (mut so_far, mut failed) = (0u64, 0u64);
                    for minute in spans.chunk_by(|a, b| a.start_ns / MINUTE == b.start_ns / MINUTE) {
                        so_far += minute.len() as u64;
                        failed += minute.iter().filter(|x| x.error).count() as u64;
                        let budget = allowed * so_far as f64;
                        if budget > 0.0 && failed as f64 / budget * 100.0 >= config.sla.budget_breach {
                            breaches += 1;
                            break;
                        }
                    }
                    (level, level >= obj.target.unwrap_or(100.0))
                }
                ObjectiveKind::MaxDowntime => {
                    breaches += downtime.iter().filter(|(a, b)| b - a > threshold_ns).count() as u32;
                    (longest as f64 / MINUTE as f64, longest <= threshold_ns)
                }
                ObjectiveKind::LatencyPercentile => {
                    let p = percentile(&selected, obj.percentile.unwrap_or(95.0));
                    (p as f64 / 1e6, p <= threshold_ns)
                }
                ObjectiveKind::MeanLatency => {
                    let mean = mean_ns(&selected);
                    (mean / 1e6, mean <= threshold_ns as f64)
                }
                ObjectiveKind::Streak => {
                    let days = obj.days.unwrap_or(1);
                    let (longest_run, runs) = self.streaks(&spans, threshold_ns, days, obj.working_days_only);
                    streak_warnings += runs;
                    (f64::from(longest_run), longest_run < days)
                }
            };
            let latency = matches!(obj.kind, ObjectiveKind::LatencyPercentile | ObjectiveKind::MeanLatency);
            if latency && !met {
                breaches += 1;
            }
            if !met {
                credit = credit.max(obj.credit_percent.unwrap_or(0.0));
            }
            for tier in &obj.credit_tiers {
                if measured < tier.below {
                    credit = credit.max(tier.percent);
                }
            }
            objectives.push(ExpectedObjective {
                name: obj.name.clone(),
                kind: obj.kind,
                measured,
                met,
            });
        }
        let all: Vec<&Span> = spans.iter().collect();
        ExpectedService {
            service: service.to_string(),
            requests,
            errors,
            maintenance_minutes: total(&maintenance) as f64 / MINUTE as f64,
            downtime_minutes: down as f64 / MINUTE as f64,
            longest_downtime_minutes: longest as f64 / MINUTE as f64,
            availability_percent: availability,
            mean_ms: mean_ns(&all) / 1e6,
            p95_ms: percentile(&all, 95.0) as f64 / 1e6,
            objectives,
            breaches,
            streak_warnings,
            credit_percent: credit,
            credit_amount: contract.monthly_fee.map(|fee| fee * credit / 100.0),
            currency: contract.currency.clone(),
        }
    }

    /// The longest run of consecutive (working) days whose mean latency is over the
    /// threshold, and how many runs reached `days` (each is one warning).
    fn streaks(&self, spans: &[Span], threshold_ns: i64, days: u32, working_only: bool) -> (u32, u32) {
        let (mut run, mut longest, mut warnings) = (0u32, 0u32, 0u32);
        for &(date, from, to) in &self.days {
            if working_only && matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                continue;
            }
            let day: Vec<&Span> = spans.iter().filter(|x| (from..to).contains(&x.start_ns)).collect();
            if mean_ns(&day) > threshold_ns as f64 {
                run += 1;
                longest = longest.max(run);
                if run == days {
                    warnings += 1;
                }
            } else {
                run = 0;
            }
        }
        (longest, warnings)
    }
}

/// Exact mean of the spans' durations (the engine's mean is exact too: a sum over a count).
fn mean_ns(spans: &[&Span]) -> f64 {
    if spans.is_empty() {
        return 0.0;
    }
    let sum: u128 = spans.iter().map(|x| x.duration_ns.max(0) as u128).sum();
    sum as f64 / spans.len() as f64
}

/// The nearest-rank percentile of the spans' durations.
fn percentile(spans: &[&Span], p: f64) -> i64 {
    let mut d: Vec<i64> = spans.iter().map(|x| x.duration_ns).collect();
    if d.is_empty() {
        return 0;
    }
    d.sort_unstable();
    let rank = ((p / 100.0) * d.len() as f64).ceil() as usize;
    d[rank.clamp(1, d.len()) - 1]
}

/// Sorted, merged intervals.
fn union(mut set: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    set.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in set {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `set` without the time in `minus` (both sorted and merged).
fn subtract(set: &[(i64, i64)], minus: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(mut a, b) in set {
        for &(c, d) in minus {
            if d <= a || c >= b {
                continue;
            }
            if c > a {
                out.push((a, c));
            }
            a = a.max(d);
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

/// What the script implies for the month.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub month: String,
    pub timezone: String,
    pub month_minutes: f64,
    /// Latency samples (spans) of the services with a contract.
    pub samples: u64,
    pub services: Vec<ExpectedService>,
    /// Incidents, oldest first.
    pub incidents: Vec<ExpectedIncident>,
    /// Alert events (notifications and recoveries).
    pub alerts: u64,
    /// Re-sent notifications of active alerts.
    pub duplicates: u64,
    /// Alerts suppressed by maintenance.
    pub suppressed: u64,
    /// Recoveries of alerts the engine never took (suppressed ones).
    pub unmatched: u64,
}

/// One incident the script implies.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedIncident {
    pub service: String,
    pub what: String,
    pub source: Source,
    pub opened_ns: i64,
    pub resolved_ns: i64,
    pub priority: u8,
    pub major: bool,
    pub alerts: u64,
    /// Firing notifications of its alerts, duplicates included.
    pub notifications: u64,
}

/// One service's month as the script implies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedService {
    pub service: String,
    pub requests: u64,
    pub errors: u64,
    pub maintenance_minutes: f64,
    pub downtime_minutes: f64,
    pub longest_downtime_minutes: f64,
    pub availability_percent: f64,
    pub mean_ms: f64,
    /// Exact (nearest-rank); the engine's HdrHistogram is within its precision of it.
    pub p95_ms: f64,
    pub objectives: Vec<ExpectedObjective>,
    pub breaches: u32,
    pub streak_warnings: u32,
    pub credit_percent: f64,
    pub credit_amount: Option<f64>,
    pub currency: String,
}

/// One objective's expected result.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedObjective {
    pub name: String,
    pub kind: ObjectiveKind,
    pub measured: f64,
    pub met: bool,
}

// ---- the run -----------------------------------------------------------------------------

/// What the engines made of the month.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    pub records: Vec<Record>,
    /// Payloads per format.
    pub payloads: BTreeMap<Format, u64>,
    /// Events per format.
    pub events: BTreeMap<Format, u64>,
    pub correlate: Stats,
    pub sla: SlaStats,
}

/// Generates the month's payloads, decodes each with the real decoders, and runs the events
/// through both engines in event-time order, up to the month's end so that it closes.
/// Events are sorted a day at a time: a day's payloads hold only that day's spans, and alerts
/// join the day their event time falls in, so the order is `replay`'s global sort without a
/// month of events in memory. `progress` is told each day done.
pub fn simulate(config: &Config, scenario: &Scenario, progress: &dyn Fn(u64)) -> Result<Simulation, DemoError> {
    let decoders = Decoders::new(config.decoders.clone());
    let mut sim = Simulation::default();
    let decode = |payload: Payload, sim: &mut Simulation| -> Result<Vec<Event>, DemoError> {
        let events = decoders
            .decode(payload.format, &payload.bytes)
            .map_err(|error| DemoError::Decode {
                format: payload.format,
                error,
            })?;
        // The generated payloads are all good: an item rejected is a bug in the script.
        if let Some(item) = events.rejected.first() {
            return Err(DemoError::Decode {
                format: payload.format,
                error: item.error.clone(),
            });
        }
        let events = events.events;
        *sim.payloads.entry(payload.format).or_default() += 1;
        *sim.events.entry(payload.format).or_default() += events.len() as u64;
        if let Some(e) = events.iter().find(|e| event_time(e) == 0) {
            // Every generated payload states its times; a zero would sort first and is a bug.
            return Err(DemoError::Script(format!(
                "a {} payload decoded to an event without a time: {e:?}",
                payload.format
            )));
        }
        Ok(events)
    };
    let mut alerts = Vec::new();
    for payload in scenario.alert_payloads() {
        alerts.extend(decode(payload, &mut sim)?);
    }
    alerts.sort_by_key(event_time);
    let mut alerts = alerts.into_iter().peekable();
    let mut engines = Engines::new(config)?;
    let mut records = Vec::new();
    let mut emit = |r: Record| records.push(r);
    for (done, (from, to)) in scenario.days().into_iter().enumerate() {
        let mut events = Vec::new();
        for payload in scenario.apm_payloads(from, to) {
            events.extend(decode(payload, &mut sim)?);
        }
        while let Some(alert) = alerts.next_if(|e| event_time(e) < to) {
            events.push(alert);
        }
        events.sort_by_key(event_time);
        for event in events {
            engines.process(event, &mut emit);
        }
        progress(done as u64 + 1);
    }
    for event in alerts {
        engines.process(event, &mut emit);
    }
    engines.finish(Some(scenario.end_ns), &mut emit);
    sim.records = records;
    sim.correlate = engines.correlator.stats().clone();
    sim.sla = engines.sla.stats().clone();
    Ok(sim)
}

/// How `slaflow demo` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `YYYY-MM`; the previous full month when absent.
    pub month: Option<String>,
    /// The SQLite file, started afresh; a file in the temp directory when absent.
    pub store: Option<PathBuf>,
    /// Address to serve on, instead of the config's `[server] listen`.
    pub listen: Option<String>,
    /// Keep serving after the month is printed, until `shutdown` completes.
    pub serve: bool,
    /// A config file instead of the embedded one.
    pub config: Option<PathBuf>,
}

/// The embedded demo configuration.
pub fn embedded_config() -> Result<Config, ConfigError> {
    Config::parse(Path::new("examples/demo.toml"), CONFIG)
}

/// Where the store goes without `--store`.
pub fn default_store() -> PathBuf {
    std::env::temp_dir().join("slaflow-demo").join("slaflow-demo.sqlite")
}

/// Runs the demo: generates and processes the month into a fresh embedded store, prints the
/// incidents, the monthly report and the check of the figures against the script, and serves
/// /metrics and the report API meanwhile (with `serve`, until `shutdown`). Returns whether
/// the store's figures are the ones the script implies.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<bool, DemoError> {
    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stop_requested = false;
    if options.serve {
        // One poll installs the signal handlers now, so that a SIGTERM right after the
        // "Serving on" line drains instead of killing (without --serve, Ctrl-C just kills).
        tokio::select! {
            biased;
            () = &mut shutdown => stop_requested = true,
            () = std::future::ready(()) => {}
        }
    }
    let mut config = match &options.config {
        Some(path) => Config::load(path)?,
        None => embedded_config()?,
    };
    // The demo always runs on the embedded store, never on a configured Postgres.
    config.store.kind = StoreKind::Sqlite;
    config.sqlite.path = options.store.clone().unwrap_or_else(default_store);
    if let Some(listen) = &options.listen {
        config.server.listen.clone_from(listen);
    }
    let month = match &options.month {
        Some(text) => Month::parse(text).ok_or_else(|| DemoError::Month(text.clone()))?,
        None => Month::previous(site_tz(&config)),
    };
    let scenario = Scenario::new(&config, month)?;
    let expected = scenario.expected(&config);

    start_fresh(&config.sqlite.path)?;
    let mut store = Store::open(&config).await?;
    store.migrate().await?;
    let config_file = write_config(&config);
    let config = Arc::new(config);

    // Serve from the start, as the service would: the report API answers once the month is
    // stored, and webhooks posted meanwhile take the service's ingest path into the same store.
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|source| DemoError::Listen {
            addr: config.server.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DemoError::Listen {
        addr: config.server.listen.clone(),
        source,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let store_ok = Arc::new(AtomicBool::new(false));
    let ready: Box<dyn Fn() -> bool + Send + Sync> = {
        let store_ok = store_ok.clone();
        Box::new(move || store_ok.load(Ordering::Relaxed))
    };
    let (ingest_tx, ingest_rx) = mpsc::channel(config.kafka.channel_capacity.max(1));
    let state = Arc::new(AppState::new(config.clone(), ready, Intake::Worker(ingest_tx)));
    let server = tokio::spawn(server::serve(listener, state, stopped(stop_rx)));
    let ingest = tokio::spawn(crate::pipeline::run_ingest(config.clone(), ingest_rx, store_ok));
    eprintln!(
        "slaflow demo: generating {} for {} services and running it through the decoders and engines (serving on http://{addr})",
        scenario.month,
        TRAFFIC.len()
    );

    let bar = crate::term::progress_bar(
        scenario.days.len() as u64,
        "{spinner} day {pos}/{len} [{bar:31}] {elapsed}",
    );
    let sim = {
        let (config, scenario, bar) = (config.clone(), scenario.clone(), bar.clone());
        tokio::task::spawn_blocking(move || simulate(&config, &scenario, &|done| bar.set_position(done)))
            .await
            .map_err(|e| DemoError::Task(format!("the generator stopped: {e}")))??
    };
    bar.finish_and_clear();

    let transactions = write_records(&mut store, &sim).await?;
    for (format, n) in &sim.events {
        metrics()
            .ingested
            .with_label_values(&[format.name(), "demo"])
            .inc_by(*n);
    }
    let incidents = store.incidents().await?;
    let reports = store.reports(&scenario.month.to_string(), None).await?;
    let took = started.elapsed();

    let mut out = String::new();
    overview(&mut out, &scenario, &sim, &config, transactions, took);
    incidents_table(&mut out, &incidents, &scenario, &expected);
    let _ = writeln!(out, "Monthly report {} (as the store holds it)\n", scenario.month);
    out.push_str(&render(&reports, ReportFormat::Table));
    let ok = check(&mut out, &expected, &reports, &incidents, &sim);
    if !ok && options.config.is_some() {
        let _ = writeln!(
            out,
            "  (The script's priorities and counts assume examples/demo.toml's services, CMDB and contracts;\n   with another config some differ by design.)\n"
        );
    }
    serving(
        &mut out,
        addr,
        &config,
        &scenario,
        config_file.as_deref(),
        options.serve,
    );
    print!("{out}");

    if options.serve {
        if !stop_requested {
            shutdown.await;
        }
        eprintln!("slaflow demo: shutting down");
    }
    let _ = stop_tx.send(true);
    let drain = async {
        let _ = server.await;
        ingest.await
    };
    match tokio::time::timeout(config.server.drain_timeout, drain).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(DemoError::Task(format!("ingest worker: {e}"))),
        Ok(Err(e)) => return Err(DemoError::Task(format!("ingest worker: {e}"))),
        Err(_) => {
            return Err(DemoError::Task(
                "the server did not stop within [server] drain_timeout".into(),
            ))
        }
    }
    Ok(ok)
}

/// Completes once `stop` says so.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Removes the previous demo's store (and its WAL files), refusing to remove a file that is
/// not a slaflow store: `--store` may name any path.
fn start_fresh(path: &Path) -> Result<(), DemoError> {
    let file_error = |message: String| DemoError::File {
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
        let ours = || {
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('incidents', 'monthly_reports')",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|n| n == 2)
        };
        if !empty && !ours() {
            return Err(file_error(
                "exists and is not a slaflow store; the demo starts its store afresh, so give --store a new path"
                    .into(),
            ));
        }
        std::fs::remove_file(path).map_err(|e| file_error(e.to_string()))?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e.to_string())),
            _ => {}
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(e.to_string()))?;
    }
    Ok(())
}

/// Writes the effective configuration next to the store, so that `slaflow report --config`
/// reads this store; None (and no hint printed) when that fails.
fn write_config(config: &Config) -> Option<PathBuf> {
    let path = config.sqlite.path.with_extension("toml");
    if path == config.sqlite.path {
        return None;
    }
    let text = toml::to_string(config).ok()?;
    let header = "# Written by `slaflow demo`: the configuration it ran with, pointing at its store.\n\n";
    std::fs::write(&path, format!("{header}{text}")).ok()?;
    Some(path)
}

/// Writes the records in transactions of `BATCH_RECORDS`, and feeds the stored SLA records
/// to the metrics (as the service does once a batch is stored). Returns the transactions.
async fn write_records(store: &mut Store, sim: &Simulation) -> Result<usize, DemoError> {
    let mut transactions = 0;
    for chunk in sim.records.chunks(BATCH_RECORDS) {
        let mut batch = Batch::default();
        for record in chunk {
            match record {
                Record::Correlate(o) => batch.correlate.push(o.clone()),
                Record::Sla(o) => batch.sla.push(o.clone()),
            }
        }
        let started = Instant::now();
        store.write(&batch).await?;
        metrics()
            .sink_seconds
            .with_label_values(&[store.kind_name()])
            .observe(started.elapsed().as_secs_f64());
        for record in &batch.sla {
            metrics().observe(record);
        }
        transactions += 1;
    }
    Ok(transactions)
}

// ---- output ------------------------------------------------------------------------------

/// 12345 → "12,345".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1 incident", "7 incidents", "2 recoveries".
fn plural(n: u64, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

fn duration_text(ns: i64) -> String {
    let minutes = ns / MINUTE;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

fn overview(
    out: &mut String,
    scenario: &Scenario,
    sim: &Simulation,
    config: &Config,
    transactions: usize,
    took: Duration,
) {
    let count = |map: &BTreeMap<Format, u64>, f: Format| map.get(&f).copied().unwrap_or(0);
    let payloads: u64 = sim.payloads.values().sum();
    let events: u64 = sim.events.values().sum();
    let (c, s) = (&sim.correlate, &sim.sla);
    let mut windows: BTreeMap<Granularity, u64> = BTreeMap::new();
    let (mut warnings, mut breaches, mut burn) = (0u64, 0u64, 0u64);
    for record in &sim.records {
        match record {
            Record::Sla(SlaOutput::WindowClosed(w)) => *windows.entry(w.granularity).or_default() += 1,
            Record::Sla(SlaOutput::Warning(_)) => warnings += 1,
            Record::Sla(SlaOutput::Breach(_)) => breaches += 1,
            Record::Sla(SlaOutput::BurnRateAlert(_)) => burn += 1,
            _ => {}
        }
    }
    let window = |g: Granularity| thousands(windows.get(&g).copied().unwrap_or(0));
    let services: Vec<&str> = TRAFFIC.iter().map(|t| t.service).collect();
    let _ = writeln!(
        out,
        "slaflow demo: {} ({}) for {}\n\
         A generated month of monitoring traffic in the sources' own wire formats, decoded by the real\n\
         decoders, correlated and measured by the real engines, and written to the embedded store.\n",
        scenario
            .month
            .first_day()
            .map_or(scenario.month.to_string(), |d| d.format("%B %Y").to_string()),
        scenario.tz,
        match services.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => services.join(""),
        }
    );
    let _ = writeln!(
        out,
        "  generated   {} payloads: {} Alertmanager, {} Zabbix and {} Datadog monitor webhooks, {} Datadog APM trace payloads",
        thousands(payloads),
        count(&sim.payloads, Format::Alertmanager),
        count(&sim.payloads, Format::ZabbixWebhook),
        count(&sim.payloads, Format::DatadogWebhook),
        thousands(count(&sim.payloads, Format::DatadogApm)),
    );
    let _ = writeln!(
        out,
        "  decoded     {} events: {} alerts, {} spans; none rejected",
        thousands(events),
        thousands(events - count(&sim.events, Format::DatadogApm)),
        thousands(count(&sim.events, Format::DatadogApm)),
    );
    let _ = writeln!(
        out,
        "  correlated  {} alert events → {}; {}, {} suppressed by maintenance, {} without its problem",
        c.alerts,
        plural(c.incidents_opened, "incident"),
        plural(c.duplicates, "duplicate"),
        c.suppressed,
        plural(c.unmatched, "recovery"),
    );
    let _ = writeln!(
        out,
        "  measured    {} latency samples → {} hour, {} day and {} month windows; {} warnings, {} breaches, {} burn-rate alert changes",
        thousands(s.samples),
        window(Granularity::Hour),
        window(Granularity::Day),
        window(Granularity::Month),
        warnings,
        breaches,
        burn
    );
    let _ = writeln!(
        out,
        "  stored      {} records in {} transactions → {}",
        thousands(sim.records.len() as u64),
        transactions,
        config.sqlite.path.display()
    );
    let _ = writeln!(out, "  took        {:.1} s\n", took.as_secs_f64());
}

fn incidents_table(out: &mut String, rows: &[IncidentRow], scenario: &Scenario, expected: &Expected) {
    let local = |ns: i64| DateTime::from_timestamp_nanos(ns).with_timezone(&scenario.tz);
    let _ = writeln!(
        out,
        "Incidents ({} in the store; times in {})\n",
        rows.len(),
        scenario.tz
    );
    let _ = writeln!(
        out,
        "  {:<20}  {:<8}  {:<8}  {:<16}  {:<8}  {:>8}  {:>6}  {:>13}  what",
        "id", "service", "priority", "opened", "resolved", "duration", "alerts", "notifications"
    );
    for row in rows {
        let resolved = row.resolved_ns.map_or("open".to_string(), |r| {
            if local(r).date_naive() == local(row.opened_ns).date_naive() {
                local(r).format("%H:%M").to_string()
            } else {
                local(r).format("%d %H:%M").to_string()
            }
        });
        let duration = row
            .resolved_ns
            .map_or(String::new(), |r| duration_text(r - row.opened_ns));
        let what = expected
            .incidents
            .iter()
            .find(|e| e.service == row.service && e.opened_ns == row.opened_ns)
            .map_or(String::new(), |e| format!("{} ({})", e.what, e.source.name()));
        let priority = format!("P{}{}", row.priority, if row.major { " major" } else { "" });
        let _ = writeln!(
            out,
            "  {:<20}  {:<8}  {:<8}  {:<16}  {:<8}  {:>8}  {:>6}  {:>13}  {what}",
            row.id,
            row.service,
            priority,
            local(row.opened_ns).format("%a %d %b %H:%M"),
            resolved,
            duration,
            row.alerts,
            row.occurrences,
        );
    }
    out.push('\n');
}

/// Compares the store with the script's figures; prints one line per service and the
/// differences, if any. True when everything matches.
fn check(out: &mut String, expected: &Expected, reports: &[Report], rows: &[IncidentRow], sim: &Simulation) -> bool {
    let _ = writeln!(
        out,
        "Check: the figures the script implies (counted from the script, not by the engines) against the store\n"
    );
    let mut all_ok = true;
    let close = |a: f64, b: f64, tolerance: f64| (a - b).abs() <= tolerance;
    for e in &expected.services {
        let mut diffs: Vec<String> = Vec::new();
        let Some(r) = reports.iter().find(|r| r.service == e.service) else {
            let _ = writeln!(out, "  {:<8}  ✗ no report in the store", e.service);
            all_ok = false;
            continue;
        };
        let mut number = |what: &str, want: f64, got: f64, tolerance: f64| {
            if !close(want, got, tolerance) {
                diffs.push(format!("{what}: script {want:.4}, store {got:.4}"));
            }
        };
        number("availability %", e.availability_percent, r.availability_percent, 1e-6);
        number("downtime min", e.downtime_minutes, r.downtime_minutes, 1e-6);
        number(
            "longest downtime min",
            e.longest_downtime_minutes,
            r.longest_downtime_minutes,
            1e-6,
        );
        number("maintenance min", e.maintenance_minutes, r.maintenance_minutes, 1e-6);
        number("requests", e.requests as f64, r.requests as f64, 0.0);
        number("errors", e.errors as f64, r.errors as f64, 0.0);
        number("mean ms", e.mean_ms, r.mean_ms, 1e-6);
        // HdrHistogram keeps 3 significant digits: within 0.1 % of the exact percentile.
        number("p95 ms", e.p95_ms, r.p95_ms, e.p95_ms * 0.002);
        number("breaches", f64::from(e.breaches), f64::from(r.breaches), 0.0);
        number("credit %", e.credit_percent, r.credit_percent, 1e-9);
        number(
            "credit amount",
            e.credit_amount.unwrap_or(0.0),
            r.credit_amount.unwrap_or(0.0),
            0.005,
        );
        let streaks = sim
            .records
            .iter()
            .filter(|x| matches!(x, Record::Sla(SlaOutput::Warning(f)) if f.service == e.service && f.kind == "streak"))
            .count();
        number("streak warnings", f64::from(e.streak_warnings), streaks as f64, 0.0);
        if !r.complete {
            diffs.push("the stored report is not the final one".into());
        }
        for o in &e.objectives {
            match r.objectives.iter().find(|x| x.name == o.name) {
                None => diffs.push(format!("objective {}: not in the report", o.name)),
                Some(x) if x.met != o.met => diffs.push(format!(
                    "objective {}: script {}, store {}",
                    o.name,
                    if o.met { "met" } else { "missed" },
                    if x.met { "met" } else { "missed" }
                )),
                Some(_) => {}
            }
        }
        let missed: Vec<&str> = e
            .objectives
            .iter()
            .filter(|o| !o.met)
            .map(|o| o.name.as_str())
            .collect();
        let credit = match e.credit_amount {
            Some(amount) if e.credit_percent > 0.0 => {
                format!("credit {:.0} % = {:.2} {}", e.credit_percent, amount, e.currency)
            }
            _ => "no credit".to_string(),
        };
        let down = format!(
            "{:.0} min down of {}{}",
            e.downtime_minutes,
            thousands((expected.month_minutes - e.maintenance_minutes) as u64),
            if e.maintenance_minutes > 0.0 {
                format!(" ({:.0} min maintenance excluded)", e.maintenance_minutes)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "  {:<8}  {}  availability {:.4} %: {down}; {}/{} objectives met{}; {credit}",
            e.service,
            if diffs.is_empty() { "✓" } else { "✗" },
            e.availability_percent,
            e.objectives.len() - missed.len(),
            e.objectives.len(),
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (missed: {})", missed.join(", "))
            },
        );
        for d in &diffs {
            let _ = writeln!(out, "              ✗ {d}");
        }
        all_ok &= diffs.is_empty();
    }
    let mut diffs = Vec::new();
    for e in &expected.incidents {
        match rows
            .iter()
            .find(|r| r.service == e.service && r.opened_ns == e.opened_ns)
        {
            None => diffs.push(format!(
                "no incident of {} opened at {}",
                e.service,
                crate::time::to_rfc3339(e.opened_ns)
            )),
            Some(r) => {
                let got = (r.priority, r.major, r.alerts, r.occurrences, r.resolved_ns);
                let want = (e.priority, e.major, e.alerts, e.notifications, Some(e.resolved_ns));
                if got != want {
                    diffs.push(format!(
                        "{} ({}): script (priority, major, alerts, notifications, resolved) = {want:?}, store {got:?}",
                        r.id, e.what
                    ));
                }
            }
        }
    }
    let duplicates: u64 = rows.iter().map(|r| r.occurrences.saturating_sub(r.alerts)).sum();
    let counts = [
        ("incidents", expected.incidents.len() as u64, rows.len() as u64),
        ("duplicates", expected.duplicates, duplicates),
        ("suppressed", expected.suppressed, sim.correlate.suppressed),
        ("latency samples", expected.samples, sim.sla.samples),
    ];
    for (what, want, got) in counts {
        if want != got {
            diffs.push(format!("{what}: script {want}, store {got}"));
        }
    }
    let _ = writeln!(
        out,
        "  {:<8}  {}  {}, {}, {} suppressed in maintenance, {} latency samples",
        "overall",
        if diffs.is_empty() { "✓" } else { "✗" },
        plural(expected.incidents.len() as u64, "incident"),
        plural(expected.duplicates, "duplicate notification"),
        plural(expected.suppressed, "alert"),
        thousands(expected.samples),
    );
    for d in &diffs {
        let _ = writeln!(out, "              ✗ {d}");
    }
    all_ok &= diffs.is_empty();
    out.push('\n');
    all_ok
}

fn serving(
    out: &mut String,
    addr: std::net::SocketAddr,
    config: &Config,
    scenario: &Scenario,
    config_file: Option<&Path>,
    serve: bool,
) {
    let base = format!("http://{addr}");
    let token = config.server.effective_tokens().into_iter().next();
    if serve {
        let _ = writeln!(out, "Serving on {base} until Ctrl-C; try:");
    } else {
        let _ = writeln!(
            out,
            "While it ran, this served /metrics and the report API on {base}.\n\
             `slaflow demo --serve` keeps serving after the report; then try:"
        );
    }
    let _ = writeln!(out, "  curl {base}/metrics");
    match &token {
        Some(token) => {
            let _ = writeln!(
                out,
                "  curl -H 'Authorization: Bearer {token}' '{base}/v1/reports/{}?format=csv'",
                scenario.month
            );
            let _ = writeln!(
                out,
                "  curl -H 'Authorization: Bearer {token}' --data-binary @tests/fixtures/alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json {base}/v1/ingest/alertmanager"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  (no API token configured: /v1/reports and /v1/ingest answer 401; set [server] tokens)"
            );
        }
    }
    if let Some(file) = config_file {
        let _ = writeln!(
            out,
            "The store stays until the next demo:\n  slaflow report --config {} --month {} --format csv",
            file.display(),
            scenario.month
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn october() -> (Config, Scenario) {
        let config = embedded_config().unwrap();
        let scenario = Scenario::new(&config, Month::parse("2026-10").unwrap()).unwrap();
        (config, scenario)
    }

    fn digest(payloads: &[Payload]) -> u64 {
        payloads.iter().fold(0, |h, p| {
            p.bytes.iter().fold(splitmix(h ^ p.format as u64), |h, &b| {
                h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b)
            })
        })
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (config, a) = october();
        let b = Scenario::new(&config, Month::parse("2026-10").unwrap()).unwrap();
        assert_eq!(a.alert_payloads(), b.alert_payloads());
        let (from, to) = a.days()[8];
        let (x, y) = (a.apm_payloads(from, to), b.apm_payloads(from, to));
        assert_eq!(x, y);
        assert_eq!(digest(&x), digest(&y));
        assert_eq!(a.expected(&config), b.expected(&config));
        // Another month is another month.
        let c = Scenario::new(&config, Month::parse("2026-11").unwrap()).unwrap();
        let (from, to) = c.days()[8];
        assert_ne!(digest(&x), digest(&c.apm_payloads(from, to)));
    }

    #[test]
    fn every_generated_payload_decodes() {
        let (config, s) = october();
        let decoders = Decoders::new(config.decoders.clone());
        let (from, to) = s.days()[8];
        for p in s.alert_payloads().into_iter().chain(s.apm_payloads(from, to)) {
            let events = decoders.decode(p.format, &p.bytes).unwrap().events;
            assert!(!events.is_empty());
            assert!(
                events.iter().all(|e| event_time(e) >= from.min(s.start_ns)),
                "{events:?}"
            );
        }
        // A day of APM: three services, three requests a minute, ten minutes a payload.
        let apm = s.apm_payloads(from, to);
        assert_eq!(apm.len(), 3 * 144);
        let spans: usize = apm
            .iter()
            .map(|p| decoders.decode(p.format, &p.bytes).unwrap().events.len())
            .sum();
        assert_eq!(spans, 3 * 3 * 1440);
    }

    #[test]
    fn the_script_implies_the_documented_october() {
        let (config, s) = october();
        let e = s.expected(&config);
        // October 2026 in Berlin: 31 days and the hour DST gives back on the 25th.
        assert_eq!(e.month_minutes, 44_700.0);
        let webshop = &e.services[0];
        assert_eq!(webshop.downtime_minutes, 95.0);
        assert!((webshop.availability_percent - (1.0 - 95.0 / 44_700.0) * 100.0).abs() < 1e-9);
        assert_eq!((webshop.credit_percent, webshop.credit_amount), (10.0, Some(2000.0)));
        assert_eq!(webshop.errors, 95 * 3 + 21);
        let payments = &e.services[1];
        assert_eq!((payments.maintenance_minutes, payments.downtime_minutes), (180.0, 25.0));
        assert!(payments.objectives.iter().all(|o| o.met), "{payments:?}");
        let search = &e.services[2];
        let missed: Vec<&str> = search
            .objectives
            .iter()
            .filter(|o| !o.met)
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(missed, ["p95-latency", "slow-days"]);
        assert_eq!((search.streak_warnings, search.credit_amount), (1, Some(200.0)));
        assert_eq!((e.incidents.len(), e.duplicates, e.suppressed), (7, 511, 1));
        assert_eq!(s.slow_days_start().unwrap().to_string(), "2026-10-20");
    }

    #[test]
    fn months_parse_and_intervals_subtract() {
        assert_eq!(Month::parse("2026-10"), Some(Month { year: 2026, month: 10 }));
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-10"), None);
        assert_eq!(Month { year: 2026, month: 12 }.next(), Month { year: 2027, month: 1 });
        assert_eq!(union(vec![(5, 8), (1, 3), (2, 4)]), [(1, 4), (5, 8)]);
        assert_eq!(subtract(&[(0, 10)], &[(2, 3), (5, 12)]), [(0, 2), (3, 5)]);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration_text(95 * MINUTE), "1h35m");
        assert_eq!(
            [plural(1, "recovery"), plural(2, "recovery"), plural(0, "alert")],
            ["1 recovery", "2 recoveries", "0 alerts"]
        );
    }
}
