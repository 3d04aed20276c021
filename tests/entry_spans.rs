//! Requests, not spans: a month of real-shaped Datadog traces (a root span per request, a
//! child of the same service in some, a database child of another service in others, spans
//! in finish order so the root comes last, some database children flushed in the next
//! payload) replayed with contracts for both services. Each monthly report must equal an
//! exact computation over the requests alone, made here from what the generator knows:
//! request counts exact, mean and percentiles within HdrHistogram's 0.1 %.

use std::path::PathBuf;

use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::engine::sla::{Report, SlaOutput};
use slaflow::replay::{replay, Input, Record};

/// The database spans carried into the next day's payload arrive up to a day late: within
/// the allowed lateness here, so that they count (the replay is in arrival order).
const CONFIG: &str = r#"
[sla]
allowed_lateness = "25h"

[[sla.contracts]]
service = "orders"
[[sla.contracts.objectives]]
name = "p95"
kind = "latency_percentile"
percentile = 95.0
threshold = "5s"

[[sla.contracts]]
service = "postgres"
[[sla.contracts.objectives]]
name = "mean"
kind = "mean_latency"
threshold = "1s"
"#;

/// 2026-03-01T00:00:00Z and the month's end.
const MONTH_START: i64 = 1_772_323_200_000_000_000;
const MONTH_END: i64 = 1_775_001_600_000_000_000;
const MINUTE: i64 = 60_000_000_000;

/// A deterministic pseudo-random sequence (64-bit LCG), so the month is the same each run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A duration with a long tail: 20 ms to about 4 s.
    fn duration(&mut self) -> i64 {
        let u = (self.next() % 10_000) as f64 / 10_000.0;
        (20_000_000.0 * (1.0 + 199.0 * u.powi(6))) as i64
    }
}

fn span(service: &str, name: &str, trace: u64, id: u64, parent: u64, start: i64, duration: i64) -> String {
    format!(
        r#"{{"service":"{service}","name":"{name}","resource":"{name}","trace_id":{trace},"span_id":{id},"parent_id":{parent},"start":{start},"duration":{duration},"error":0,"meta":{{"component":"flask"}},"metrics":{{"process_id":42}}}}"#
    )
}

/// The month as one payload per day (one file each), and the request durations of each
/// service as the generator made them.
struct Month {
    payloads: Vec<String>,
    orders: Vec<i64>,
    postgres: Vec<i64>,
}

fn month() -> Month {
    let mut rng = Lcg(7);
    let (mut orders, mut postgres) = (Vec::new(), Vec::new());
    let mut payloads = Vec::new();
    // Database spans flushed late: they go into the next day's payload.
    let mut carried: Vec<String> = Vec::new();
    let mut trace = 0u64;
    let mut day = MONTH_START;
    while day < MONTH_END {
        let mut chunks: Vec<String> = std::mem::take(&mut carried)
            .into_iter()
            .map(|s| format!("[{s}]"))
            .collect();
        let mut t = day;
        while t < day + 24 * 60 * MINUTE {
            trace += 1;
            let root = rng.duration();
            let mut spans = Vec::new();
            match rng.next() % 10 {
                // A step inside the service: not a request.
                0..=3 => spans.push(span("orders", "orders.pricing", trace, 2, 1, t + 1_000, root / 2)),
                // A query of the database service: a request of that service.
                4..=6 => {
                    let d = rng.duration() / 4;
                    postgres.push(d);
                    let query = span("postgres", "postgresql.query", trace, 3, 1, t + 2_000, d);
                    if rng.next() % 5 == 0 {
                        // The same trace, split over two payloads.
                        carried.push(query);
                    } else {
                        spans.push(query);
                    }
                }
                _ => {}
            }
            // Finish order: the root, which ends last, comes last.
            spans.push(span("orders", "POST /orders", trace, 1, 0, t, root));
            orders.push(root);
            chunks.push(format!("[{}]", spans.join(",")));
            t += 2 * MINUTE + (rng.next() % 60) as i64 * 1_000_000_000;
        }
        payloads.push(format!("[{}]", chunks.join(",\n")));
        day += 24 * 60 * MINUTE;
    }
    if !carried.is_empty() {
        let chunks: Vec<String> = carried.into_iter().map(|s| format!("[{s}]")).collect();
        payloads.push(format!("[{}]", chunks.join(",\n")));
    }
    Month {
        payloads,
        orders,
        postgres,
    }
}

/// The exact figures of a set of durations: (count, mean, p50, p95, p99) in ms, with the
/// percentile as HdrHistogram defines it (the smallest value with at least q of the values
/// at or below it).
fn exact(durations: &[i64]) -> (u64, f64, f64, f64, f64) {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let ms = |ns: i64| ns as f64 / 1e6;
    let at = |q: f64| ms(sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]);
    let mean = sorted.iter().map(|&d| d as f64).sum::<f64>() / n as f64 / 1e6;
    (n as u64, mean, at(0.50), at(0.95), at(0.99))
}

fn assert_close(what: &str, got: f64, expected: f64) {
    let error = (got - expected).abs() / expected;
    assert!(
        error <= 0.001,
        "{what}: {got} against exactly {expected} ({:.3} %)",
        error * 100.0
    );
}

#[test]
fn a_month_of_traces_with_child_spans_reports_the_requests_exactly() {
    let month = month();
    let dir = std::env::temp_dir().join(format!("slaflow-entry-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs: Vec<Input> = month
        .payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            let path: PathBuf = dir.join(format!("day-{i:02}.json"));
            std::fs::write(&path, payload).unwrap();
            Input {
                format: Format::DatadogApm,
                path,
            }
        })
        .collect();
    let config = Config::parse(std::path::Path::new("entry.toml"), CONFIG).unwrap();
    let mut reports: Vec<Report> = Vec::new();
    let (summary, _) = replay(&config, &inputs, Some(MONTH_END + 60 * MINUTE), |record| {
        if let Record::Sla(SlaOutput::MonthlyReport(r)) = record {
            reports.push((**r).clone());
        }
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected.first());

    let pricing_spans = summary.events - (month.orders.len() + month.postgres.len()) as u64;
    assert!(
        pricing_spans > 1000,
        "the month has internal spans to leave out: {pricing_spans}"
    );
    assert_eq!(
        summary.sla.spans_ignored, pricing_spans,
        "every internal span ignored, and counted"
    );
    for (service, durations) in [("orders", &month.orders), ("postgres", &month.postgres)] {
        let report = reports
            .iter()
            .find(|r| r.service == service && r.period == "2026-03" && r.complete)
            .unwrap_or_else(|| panic!("a final March report for {service}"));
        let (count, mean, p50, p95, p99) = exact(durations);
        assert_eq!(report.requests, count, "{service}: requests");
        assert_close(&format!("{service} mean"), report.mean_ms, mean);
        assert_close(&format!("{service} p50"), report.p50_ms, p50);
        assert_close(&format!("{service} p95"), report.p95_ms, p95);
        assert_close(&format!("{service} p99"), report.p99_ms, p99);
    }
}
