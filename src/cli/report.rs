//! `slaflow report`: monthly SLA reports, read from the store (`--month`) or computed by
//! replaying inputs (`--from-replay`), rendered as a table, JSON or CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::engine::sla::SlaOutput;
use slaflow::engine::sla::{Finding, Report};
use slaflow::replay::{Input, Record};
use slaflow::report::{kpis, render_kpis, render_with, ReportFormat};

use super::{load_config, open_existing_store, parse_inputs, parse_time, print_summary, runtime, status};

/// `slaflow report`'s arguments as the command line gave them (`Command::Report` in
/// `main.rs` documents each).
pub struct Args {
    pub from_replay: bool,
    pub config: PathBuf,
    pub month: Option<String>,
    pub service: Option<String>,
    pub format: ReportFormat,
    pub kpis: bool,
    pub input_format: Option<Format>,
    pub until: Option<String>,
    pub inputs: Vec<String>,
}

/// Prints the reports `args` ask for; exit status 1 when none matches (or, replaying, when
/// a record was rejected).
pub fn run(args: Args) -> Result<ExitCode, String> {
    let config = load_config(Some(args.config))?;
    let service = args.service.as_deref();
    if !args.from_replay {
        // clap requires --month without --from-replay.
        let month = args.month.unwrap_or_default();
        return from_store(&config, &month, service, (args.format, args.kpis));
    }
    let inputs = parse_inputs(&args.inputs, args.input_format)?;
    from_replay(
        &config,
        &inputs,
        parse_time(args.until)?,
        args.month.as_deref(),
        service,
        (args.format, args.kpis),
    )
}

/// The reports (with the month's warnings and breaches, for HTML), or their incident KPIs
/// (`.1`), in the format.
fn print(reports: &[Report], findings: &[(String, Finding)], (format, as_kpis): (ReportFormat, bool)) {
    if as_kpis {
        print!("{}", render_kpis(&kpis(reports), format));
    } else {
        print!("{}", render_with(reports, findings, format));
    }
}

/// `report --month` without `--from-replay`: the month's reports as the store holds them.
fn from_store(
    config: &Config,
    month: &str,
    service: Option<&str>,
    format: (ReportFormat, bool),
) -> Result<ExitCode, String> {
    if !is_month(month) {
        return Err(format!("--month: expected YYYY-MM, found {month:?}"));
    }
    let read = runtime()?.block_on(async {
        let store = open_existing_store(config).await?;
        let findings = match format.0 {
            ReportFormat::Html => store.findings(month, service).await?,
            _ => Vec::new(),
        };
        Ok::<_, slaflow::sinks::SinkError>((store.kind_name(), store.reports(month, service).await?, findings))
    });
    let (kind, reports, findings) = read.map_err(|e| e.to_string())?;
    print(&reports, &findings, format);
    if reports.is_empty() {
        eprintln!("no report in the {kind} store for {}", scope(Some(month), service));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a report query asked for, in words: "month 2026-03 and service webshop", "every
/// month and service".
fn scope(month: Option<&str>, service: Option<&str>) -> String {
    let month = month.map_or("every month".to_string(), |m| format!("month {m}"));
    match service {
        Some(s) => format!("{month} and service {s}"),
        None => format!("{month} and every service"),
    }
}

/// `YYYY-MM` with a month from 01 to 12.
fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
        && matches!(text[5..].parse::<u8>(), Ok(1..=12))
}

/// `report --from-replay`: the final reports of the months the inputs close, and each
/// contract's running month as of the end of the replay, filtered by month and service.
fn from_replay(
    config: &Config,
    inputs: &[Input],
    until: Option<i64>,
    month: Option<&str>,
    service: Option<&str>,
    format: (ReportFormat, bool),
) -> Result<ExitCode, String> {
    let (mut reports, mut findings) = (Vec::new(), Vec::new());
    let (summary, sla) = slaflow::replay::replay(config, inputs, until, |record| match record {
        Record::Sla(SlaOutput::MonthlyReport(r)) => reports.push((**r).clone()),
        Record::Sla(SlaOutput::Warning(f)) => findings.push(("warning".to_string(), f.clone())),
        Record::Sla(SlaOutput::Breach(f)) => findings.push(("breach".to_string(), f.clone())),
        _ => {}
    })
    .map_err(|e| e.to_string())?;
    // The running month, as of the end of the replay.
    let end = until.or(summary.last_event_ns).unwrap_or(0);
    for contract in &config.sla.contracts {
        if let Some(r) = sla.report(&contract.service, end) {
            if !reports
                .iter()
                .any(|done| done.service == r.service && done.period == r.period)
            {
                reports.push(r);
            }
        }
    }
    reports.retain(|r| month.is_none_or(|m| r.period == m) && service.is_none_or(|s| r.service == s));
    findings.retain(|(_, f)| month.is_none_or(|m| f.period == m) && service.is_none_or(|s| f.service == s));
    print(&reports, &findings, format);
    print_summary(&summary);
    if reports.is_empty() {
        eprintln!("no report matches: none for {}", scope(month, service));
        return Ok(ExitCode::from(1));
    }
    Ok(status(summary.rejected.is_empty()))
}
