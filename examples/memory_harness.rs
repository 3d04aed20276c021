//! Memory at scale: resident memory (VmRSS, and the peak VmHWM, from /proc) of
//!
//! - `files`: `slaflow decode` and `slaflow replay` of a generated 500 MB Zabbix export
//!   NDJSON file (written to target/memory_harness/, kept for later runs), the built binary
//!   run as a child whose peak is polled from /proc/<pid>/status;
//! - `sla [N] [--burn-rates]`: the SLA engine holding N services (10 000 and 100 000 without
//!   N, each in a fresh process) with contracts and a month of history: resident memory per
//!   service. Burn-rate alerts are off unless `--burn-rates`: with them (the default rules'
//!   longest window is 3 days) every service with traffic is evaluated every minute, and a
//!   month of 100 000 services is hours of CPU; without them a service is evaluated at its
//!   bins' and windows' ends. What is held per service is the same either way but for the
//!   burn-rate state. `--days D` shortens the history to D days before the open hour (0: the
//!   open hour alone), for a quick figure where a month costs too much CPU.
//!   It also prints the live heap (this harness's allocator counts what it hands out),
//!   resident memory after `malloc_trim(0)` and the engine's accounting (`SlaEngine::memory`).
//! - `idle [N]`: the time of a clock move over N services (100 000) with state and nothing
//!   due (the SLA engine walks only services due by the move);
//! - `flood [N [MAX]]`: N distinct alert fingerprints (1 000 000) through the correlation
//!   engine with `[correlate.dedup] max_entries = MAX` (100 000): alerts held, evictions,
//!   the alert keys the incidents hold, resident memory. `--batch B` takes the engine's
//!   changes every B alerts as the service's batches do (1 000; 0: never, as `replay`).
//!
//!     cargo build --release && cargo run --release --example memory_harness -- [files|sla|flood|all] [--bin PATH] [--mb N]
//!
//! `--bin` picks the slaflow binary for `files` (default target/release/slaflow; another
//! build, an older one say, gives its figures for the same file); `--mb` the file's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use slaflow::config::Config;
use slaflow::engine::correlate::Correlator;
use slaflow::engine::sla::SlaEngine;
use slaflow::model::{AlertEvent, AlertStatus, Event, LatencyBatch};

const T0_NS: i64 = 1_772_323_200_000_000_000; // 2026-03-01T00:00:00Z
const MIN_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MIN_NS;

/// The system allocator, counting the bytes it has handed out and not yet got back: the live
/// heap, to set against resident memory (what the allocator holds besides, freed or not).
struct Counting;

static LIVE_HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_HEAP.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes of live heap allocations, in KiB.
fn live_heap_kib() -> u64 {
    LIVE_HEAP.load(Ordering::Relaxed) as u64 / 1024
}

/// Asks glibc to hand freed heap back to the system (`malloc_trim(0)`): resident memory
/// after it, against before, is what the allocator kept of freed memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers and may be called at any time.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`); none once the process is gone.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// This process's (VmRSS, VmHWM) in KiB.
fn own() -> (u64, u64) {
    (
        status_kib("self", "VmRSS").unwrap_or(0),
        status_kib("self", "VmHWM").unwrap_or(0),
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let positional: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let number = |i: usize, default: u64| positional.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
    let result = match positional.first().map(|s| s.as_str()).unwrap_or("all") {
        "files" => files(flag("--bin"), flag("--mb").and_then(|m| m.parse().ok()).unwrap_or(500)),
        "sla" if positional.len() > 1 => sla(
            number(1, 10_000) as usize,
            args.iter().any(|a| a == "--burn-rates"),
            flag("--days").and_then(|d| d.parse().ok()).unwrap_or(30),
        ),
        "sla" => again(&["sla", "10000"]).and_then(|()| again(&["sla", "100000"])),
        "idle" => idle(number(1, 100_000) as usize),
        "flood" => flood(
            number(1, 1_000_000),
            number(2, 100_000) as usize,
            flag("--batch").and_then(|b| b.parse().ok()).unwrap_or(1000),
        ),
        "all" => files(flag("--bin"), 500)
            .and_then(|()| again(&["sla", "10000"]))
            .and_then(|()| again(&["sla", "100000"]))
            .and_then(|()| again(&["flood"])),
        other => Err(format!(
            "unknown case {other}: files, sla [N], idle [N], flood [N [MAX]] or all"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory_harness: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs this harness again with `args`, in a fresh process: each figure from its own heap.
fn again(args: &[&str]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe).args(args).status().map_err(|e| e.to_string())?;
    status.success().then_some(()).ok_or(format!("{args:?}: {status}"))
}

// ---- (a) decode and replay of a 500 MB file ------------------------------------------------

/// Zabbix export lines until `bytes`: problems of 50 000 triggers recurring on 500 hosts (a
/// problem line every 0.5 s of event time), each recovered 10 minutes later.
fn generate(path: &Path, bytes: u64) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= bytes) {
        return Ok(());
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut written = 0u64;
    let t0 = T0_NS / 1_000_000_000 + 86_400;
    let mut k = 0i64;
    while written < bytes {
        let id = k % 50_000;
        let at = t0 + k / 2;
        let host = match id % 500 {
            0 => "shop-web-1".to_string(),
            1 => "shop-db".to_string(),
            2 => "fw-core".to_string(),
            h => format!("host-{h:03}"),
        };
        let line = format!(
            r#"{{"clock":{at},"ns":{},"value":1,"name":"Trigger {id} on {host}","severity":{},"eventid":{id},"hosts":[{{"host":"{host}","name":"{host} visible"}}],"groups":["Linux servers","Production"],"tags":[{{"tag":"service","value":"svc-{}"}},{{"tag":"env","value":"prod"}}]}}"#,
            (k * 7919) % 1_000_000_000,
            id % 6,
            id % 97
        );
        out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
        written += line.len() as u64 + 1;
        if k >= 1200 && k % 2 == 0 {
            let recovered = k - 1200;
            let line = format!(
                r#"{{"clock":{at},"ns":1,"value":0,"eventid":{},"p_eventid":{}}}"#,
                10_000_000 + k,
                recovered % 50_000
            );
            out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            written += line.len() as u64 + 1;
        }
        k += 1;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Runs `bin args`, stdout discarded, polling its peak resident memory: (peak KiB, seconds,
/// the last line of its stderr).
fn peak_of(bin: &Path, args: &[&str]) -> Result<(u64, f64, String), String> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id().to_string();
    let mut peak = 0;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if let Some(hwm) = status_kib(&pid, "VmHWM") {
            peak = peak.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("").to_string();
    Ok((peak, started.elapsed().as_secs_f64(), last))
}

/// (a): decode and replay of the generated file, each a child process.
fn files(bin: Option<String>, megabytes: u64) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = bin.map_or_else(|| root.join("target/release/slaflow"), PathBuf::from);
    if !bin.exists() {
        return Err(format!("{} not found: cargo build --release first", bin.display()));
    }
    let dir = root.join("target/memory_harness");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!("zabbix-{megabytes}mb.ndjson"));
    generate(&path, megabytes * 1_000_000)?;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let file = path.display().to_string();
    let config = root.join("examples/slaflow.toml").display().to_string();
    println!("file: {file}, {:.0} MB; binary {}", size as f64 / 1e6, bin.display());
    let decode = ["decode", "--format", "zabbix-export", file.as_str()];
    let (peak, secs, last) = peak_of(&bin, &decode)?;
    println!("decode: peak RSS {:.1} MiB (VmHWM), {secs:.1} s; {last}", mib(peak));
    let input = format!("zabbix-export={file}");
    let replay = ["replay", "--config", config.as_str(), input.as_str()];
    let (peak, secs, last) = peak_of(&bin, &replay)?;
    println!("replay: peak RSS {:.1} MiB (VmHWM), {secs:.1} s; {last}", mib(peak));
    Ok(())
}

// ---- (b) the SLA engine holding many services -----------------------------------------------

/// The bench's contract (four objectives), for `services` services `svc-0`.. `svc-(N-1)`;
/// the default burn-rate alerts when `burn_rates`, else none.
fn sla_config(services: usize, burn_rates: bool) -> Result<Config, String> {
    let mut config = Config::parse(
        Path::new("harness.toml"),
        include_str!("../tests/fixtures/sla/four_objectives.toml"),
    )
    .map_err(|e| e.to_string())?;
    if !burn_rates {
        config.sla.burn_rate_alerts.clear();
    }
    let contract = config.sla.contracts.first().cloned().ok_or("no contract parsed")?;
    config.sla.contracts = (0..services)
        .map(|i| {
            let mut c = contract.clone();
            c.service = format!("svc-{i}");
            c
        })
        .collect();
    Ok(config)
}

/// `n` samples of `service` spread over the `step` ns from `start`, latencies 2 ms..0.9 s.
fn batch(service: &str, start: i64, step: i64, n: i64, seed: i64) -> Event {
    Event::Batch(LatencyBatch {
        service: service.to_string(),
        operation: "POST /orders".into(),
        times_ns: (0..n).map(|i| start + i * (step / n)).collect(),
        durations_ns: (0..n)
            .map(|i| 2_000_000 + ((seed * n + i) * 7_919_000) % 900_000_000)
            .collect(),
        errors: (0..n).map(|i| (seed + i) % 1000 == 0).collect(),
        status_codes: vec![],
    })
}

/// (b): `services` services, each with a month of history: March to the 31st at 12:00, a
/// batch of 20 samples every 6 hours, then the open hour (60 samples over 0.002..0.9 s, the
/// range that sizes its counters, as in `cargo bench --bench sla`).
fn sla(services: usize, burn_rates: bool, days: i64) -> Result<(), String> {
    let (rss0, _) = own();
    let config = sla_config(services, burn_rates)?;
    let mut engine = SlaEngine::new(&config.sla, &config.correlate, config.catalog()).map_err(|e| e.to_string())?;
    let (rss_config, _) = own();
    let heap_config = live_heap_kib();
    let names: Vec<String> = (0..services).map(|i| format!("svc-{i}")).collect();
    let mut out = Vec::new();
    let started = Instant::now();
    let end = T0_NS + 30 * 24 * HOUR_NS + 12 * HOUR_NS;
    let mut t = if days >= 30 {
        T0_NS
    } else {
        end - days * 24 * HOUR_NS - HOUR_NS
    };
    let last_hours = if days == 0 { HOUR_NS } else { 6 * HOUR_NS };
    let mut seed = 0;
    while t < end {
        let (step, n) = if t + last_hours >= end {
            (HOUR_NS, 60)
        } else {
            (6 * HOUR_NS, 20)
        };
        for name in &names {
            seed += 1;
            engine.apply(&batch(name, t, step.min(HOUR_NS), n, seed), &mut out);
        }
        t += if step == HOUR_NS { HOUR_NS } else { 6 * HOUR_NS };
        engine.advance(t.min(end) - HOUR_NS / 2, &mut out);
        out.clear();
    }
    let (rss, hwm) = own();
    let samples = engine.stats().samples;
    let live = engine.live_histogram_bytes();
    println!(
        "sla: {services} services (burn-rate alerts {}, {days} days of history), {samples} samples in {:.1} s; RSS {:.1} MiB (peak {:.1}), {:.1} MiB before the history ({:.1} MiB the process alone)",
        if burn_rates { "on" } else { "off" },
        started.elapsed().as_secs_f64(),
        mib(rss),
        mib(hwm),
        mib(rss_config),
        mib(rss0),
    );
    println!(
        "sla: per active service {:.1} KiB resident ({:.1} KiB of it the history, {:.1} KiB live histogram counters); snapshot {} bytes per service",
        (rss - rss0) as f64 / services as f64,
        (rss - rss_config) as f64 / services as f64,
        live as f64 / 1024.0 / services as f64,
        engine.snapshot().len() / services.max(1),
    );
    let held = engine.memory();
    println!(
        "sla: the engine's accounting: {} series, {} open hours holding {:.2} KiB of counts per service, {} day/month accumulators holding {:.2} KiB compressed per service, {} open minutes",
        held.series,
        held.open_hours,
        held.open_hour_bytes as f64 / 1024.0 / services as f64,
        held.accumulators,
        held.accumulator_bytes as f64 / 1024.0 / services as f64,
        held.open_minutes,
    );
    let heap = live_heap_kib();
    trim();
    let (trimmed, _) = own();
    println!(
        "sla: live heap {:.1} MiB, {:.1} KiB per service beyond the contracts; RSS after malloc_trim {:.1} MiB, {:.1} KiB per service",
        mib(heap),
        heap.saturating_sub(heap_config) as f64 / services as f64,
        mib(trimmed),
        (trimmed - rss0) as f64 / services as f64,
    );
    Ok(())
}

/// `idle N`: the cost of a clock move over N services that have state and nothing due:
/// each has a batch at 00:00 of March 1st, the clock then moves to 07:00 (past the six-hour
/// minute ring, the hour closed), and then by a minute at a time for an hour, timed.
fn idle(services: usize) -> Result<(), String> {
    let config = sla_config(services, false)?;
    let mut engine = SlaEngine::new(&config.sla, &config.correlate, config.catalog()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let started = Instant::now();
    for i in 0..services {
        engine.apply(&batch(&format!("svc-{i}"), T0_NS, MIN_NS, 5, i as i64), &mut out);
    }
    engine.advance(T0_NS + 7 * HOUR_NS, &mut out);
    let setup = started.elapsed();
    out.clear();
    let started = Instant::now();
    let moves = 60;
    for m in 1..=moves {
        engine.advance(T0_NS + 7 * HOUR_NS + m * MIN_NS, &mut out);
    }
    let took = started.elapsed();
    println!(
        "idle: {services} services, set up in {:.1} s; {moves} clock moves of a minute in {:.3} s: {:.3} ms per move, {} records",
        setup.as_secs_f64(),
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / moves as f64,
        out.len(),
    );
    Ok(())
}

// ---- (c) a flood of distinct fingerprints ---------------------------------------------------

/// A firing alert `fingerprint` of one of 100 services, at `time_ns`.
fn alert(fingerprint: u64, time_ns: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "flood".into(),
        fingerprint: format!("fp-{fingerprint:012}"),
        service: format!("svc-{}", fingerprint % 100),
        ci: format!("host-{}", fingerprint % 1000),
        alert_name: "Disk full".into(),
        severity: 3,
        status: AlertStatus::Firing as i32,
        time_ns,
        ..AlertEvent::default()
    })
}

/// (c): `n` distinct fingerprints, 10 ms apart, through the correlation engine holding at
/// most `max_entries` alerts. Every `batch` alerts the engine's changes are taken, as a
/// batch of the service takes them for its checkpoint (0: never, as `slaflow replay`, whose
/// engine then remembers every key changed or removed since it started).
fn flood(n: u64, max_entries: usize, batch: u64) -> Result<(), String> {
    let (rss0, _) = own();
    let toml = format!("[correlate.dedup]\nmax_entries = {max_entries}\n");
    let config = Config::parse(Path::new("flood.toml"), &toml).map_err(|e| e.to_string())?;
    let mut engine = Correlator::new(&config.correlate, config.catalog()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut outputs = 0usize;
    let mut peak_held = 0;
    let mut peak_keys = 0;
    let started = Instant::now();
    for i in 0..n {
        let t = T0_NS + i as i64 * 10_000_000;
        engine.apply(alert(i, t), &mut out);
        engine.advance(t, &mut out);
        outputs += out.len();
        out.clear();
        if batch > 0 && (i + 1) % batch == 0 {
            drop(engine.take_changes());
        }
        if i % 10_000 == 0 {
            peak_held = peak_held.max(engine.cached_alerts());
            peak_keys = peak_keys.max(engine.held_member_keys());
        }
    }
    engine.flush(&mut out);
    let (rss, hwm) = own();
    let stats = engine.stats();
    println!(
        "flood: {n} distinct fingerprints in {:.1} s, max_entries {max_entries}, changes taken every {batch} alerts: {} alerts held (at most {peak_held} seen), {} evictions, {} open incidents, {} member keys held by incidents (at most {peak_keys} seen), {outputs} outputs",
        started.elapsed().as_secs_f64(),
        engine.cached_alerts(),
        stats.evictions,
        engine.open_incidents(),
        engine.held_member_keys(),
    );
    println!(
        "flood: RSS {:.1} MiB (peak {:.1}), {:.1} MiB before; snapshot {:.1} MiB",
        mib(rss),
        mib(hwm),
        mib(rss0),
        engine.snapshot().len() as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}
