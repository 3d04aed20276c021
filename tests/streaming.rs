//! `decode` and `replay` stream their files: the records and the summary they give when
//! files are read a few bytes at a time (so that every line and document straddles reads)
//! are those of the whole file read at once, computed by the whole-file path
//! (`file::records`, `replay::replay_in_memory`). The recording mixes what the streaming
//! replay's look-ahead must get right: one source's files split by other sources' files, a
//! broken clock mid-file and as a file's last record (judged by the next file), history
//! lines that give no events, blank and CRLF lines, a bad line, untimed events. The binary
//! is checked too, on a file larger than its read buffer.

mod support;

use std::path::{Path, PathBuf};

use slaflow::config::Config;
use slaflow::decode::{Decoders, Format};
use slaflow::replay::{replay_in_memory, replay_streamed, Input, Order, Summary};
use slaflow::sources::file::{self, FileRecords};
use support::slaflow;

const T0: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z, in seconds
const YEAR: i64 = 365 * 86_400;

fn example() -> Config {
    Config::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/slaflow.toml"))).unwrap()
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slaflow-streaming-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Zabbix export lines from `from` (event ids and seconds), `n` problems and their
/// recoveries, with the oddities a real export has.
fn zabbix_lines(from: i64, n: i64, broken_last: bool) -> String {
    let hosts = ["shop-web-1", "shop-web-2", "fw-core", "shop-db", "unknown-host"];
    let mut out = String::new();
    for k in 0..n {
        let id = from + k;
        let at = T0 + id * 97;
        let host = hosts[(id % 5) as usize];
        let clock = if k == n / 2 { at + YEAR } else { at };
        out.push_str(&format!(
            r#"{{"clock":{clock},"ns":{},"value":1,"name":"Problem {} on {host}","severity":{},"eventid":{id},"hosts":[{{"host":"{host}","name":"{host}"}}],"groups":["G"],"tags":[{{"tag":"env","value":"prod"}}]}}"#,
            id * 7 % 1_000_000_000,
            id % 7,
            id % 6
        ));
        out.push_str(if k % 9 == 0 { "\r\n" } else { "\n" });
        if k % 4 == 0 {
            out.push_str(&format!(r#"{{"host":{{"host":"{host}","name":"{host}"}},"groups":["G"],"item_tags":[],"itemid":3,"name":"CPU","clock":{at},"ns":1,"value":0.5,"type":0}}"#));
            out.push('\n');
        }
        if k % 3 == 0 {
            out.push_str(&format!(
                r#"{{"clock":{},"ns":5,"value":0,"eventid":{},"p_eventid":{id}}}"#,
                at + 600,
                id + 100_000
            ));
            out.push('\n');
        }
        if k % 17 == 0 {
            out.push_str("\n   \n");
        }
        if k == 11 {
            out.push_str("{\"clock\": not json\n");
        }
    }
    if broken_last {
        let at = T0 + (from + n) * 97 + YEAR;
        out.push_str(&format!(
            r#"{{"clock":{at},"ns":0,"value":1,"name":"Late","severity":4,"eventid":{},"hosts":[{{"host":"fw-core","name":"fw-core"}}],"groups":[],"tags":[]}}"#,
            from + n
        ));
    }
    out
}

/// Datadog traces of webshop, a span a minute from `from` seconds, one a year ahead.
fn spans(from: i64, minutes: i64) -> String {
    let chunk = |t: i64, d: i64| {
        format!(
            r#"[{{"service":"webshop","name":"web.request","resource":"GET /products","trace_id":{t},"span_id":{t},"parent_id":0,"start":{},"duration":{d}}}]"#,
            t * 1_000_000_000
        )
    };
    let mut chunks: Vec<String> = (0..minutes)
        .map(|m| chunk(from + m * 60, 1_000_000 + m * 37_000_000))
        .collect();
    chunks.insert(3, chunk(from + YEAR, 5));
    format!("[{}]", chunks.join(","))
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The recording: Zabbix (in two files, split by others), Datadog, Alertmanager, Icinga.
fn recording(dir: &Path) -> Vec<Input> {
    let fixture = |p: &str| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/")).join(p);
    let input = |format, path| Input { format, path };
    vec![
        input(Format::ZabbixExport, write(dir, "a.ndjson", &zabbix_lines(0, 60, true))),
        input(Format::DatadogApm, write(dir, "spans-1.json", &spans(T0, 90))),
        input(
            Format::ZabbixExport,
            write(dir, "b.ndjson", &zabbix_lines(60, 40, false)),
        ),
        input(
            Format::Alertmanager,
            fixture("alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json"),
        ),
        input(Format::DatadogApm, write(dir, "spans-2.json", &spans(T0 + 90 * 60, 60))),
        input(Format::ZabbixExport, write(dir, "history.ndjson", "\n\n")),
        input(Format::Icinga2, fixture("icinga2/statechange_service.json")),
    ]
}

/// A summary as comparable text: counts, rejections, dead letters, both engines' stats.
fn summary_text(s: &Summary) -> String {
    let mut out = format!(
        "{} records, {} events, {} refused, last {:?}\n{:?}\n{:?}\n",
        s.records, s.events, s.refused, s.last_event_ns, s.correlate, s.sla
    );
    for r in &s.rejected {
        out.push_str(&format!("rejected {}: {}\n", r.path.display(), r.error));
    }
    for d in &s.dead_letters {
        out.push_str(&format!(
            "dead {} {} {} {} {:?} {:?}\n",
            d.origin, d.offset, d.seq, d.format, d.reason, d.payload
        ));
    }
    out
}

/// Records as the binary prints them, and the summary.
fn run(inputs: &[Input], chunk: Option<usize>) -> (String, String) {
    let mut out = Vec::new();
    let mut emit = |r: &slaflow::replay::Record| {
        serde_json::to_writer(&mut out, r).unwrap();
        out.push(b'\n');
    };
    let config = example();
    let (summary, _) = match chunk {
        Some(chunk) => replay_streamed(&config, inputs, Order::Arrival, None, chunk, &mut emit, |_, _| {}).unwrap(),
        None => replay_in_memory(&config, inputs, Order::Arrival, None, &mut emit).unwrap(),
    };
    (String::from_utf8(out).unwrap(), summary_text(&summary))
}

#[test]
fn a_streamed_replay_gives_the_whole_recording_s_records_whatever_the_read_size() {
    let dir = dir("replay");
    let inputs = recording(&dir);
    let (records, summary) = run(&inputs, None);
    // The recording exercises what it should: both engines spoke, the broken clocks were
    // refused, the bad line rejected.
    assert!(records.contains("incident_opened"), "{records}");
    assert!(records.contains("window_closed"), "{records}");
    assert!(summary.contains("more than max_future"), "{summary}");
    assert!(summary.contains("rejected"), "{summary}");
    for chunk in [1, 3, 64, 4096, file::READ_BUFFER] {
        let (streamed, streamed_summary) = run(&inputs, Some(chunk));
        assert!(streamed == records, "records differ at a read size of {chunk}");
        assert_eq!(streamed_summary, summary, "read size {chunk}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Decoded events as `slaflow decode` prints them, from records framed by `records`.
fn decode_whole(content: &[u8]) -> String {
    let decoders = Decoders::new(example().decoders);
    let mut out = Vec::new();
    for record in file::records(content, Format::ZabbixExport.framing()) {
        if let Ok(decoded) = decoders.decode(Format::ZabbixExport, record.bytes) {
            for event in decoded.events {
                serde_json::to_writer(&mut out, &event).unwrap();
                out.push(b'\n');
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn streamed_framing_decodes_to_the_whole_file_s_events_whatever_the_read_size() {
    let content = zabbix_lines(0, 300, true);
    let whole = decode_whole(content.as_bytes());
    let decoders = Decoders::new(example().decoders);
    for chunk in [1, 2, 7, 100, 8192] {
        let mut records = FileRecords::new(
            content.as_bytes(),
            Path::new("z"),
            Format::ZabbixExport.framing(),
            chunk,
        );
        let mut out = Vec::new();
        while let Some(record) = records.next_record().unwrap() {
            if let Ok(decoded) = decoders.decode(Format::ZabbixExport, record.bytes) {
                for event in decoded.events {
                    serde_json::to_writer(&mut out, &event).unwrap();
                    out.push(b'\n');
                }
            }
        }
        assert!(String::from_utf8(out).unwrap() == whole, "read size {chunk}");
    }
}

#[test]
fn the_binary_streams_files_larger_than_its_read_buffer_to_the_same_output() {
    let dir = dir("binary");
    // About 2.5 MB: lines straddle the 256 KiB reads.
    let content = zabbix_lines(0, 8000, true);
    assert!(content.len() > 4 * file::READ_BUFFER);
    let path = write(&dir, "big.ndjson", &content);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/slaflow.toml");
    let path_text = path.to_str().unwrap();
    let (code, stdout, stderr) = slaflow(&["decode", "--config", config, "--format", "zabbix-export", path_text]);
    assert_eq!(code, 1, "the bad line is rejected: {stderr}");
    assert!(stdout == decode_whole(content.as_bytes()), "decode's output differs");
    assert!(
        stderr.contains(&format!("{path_text}: zabbix-export at line 22 ")),
        "{stderr}"
    );

    let input = format!("zabbix-export={path_text}");
    let (_, stdout, stderr) = slaflow(&["replay", "--config", config, &input]);
    let inputs = [Input {
        format: Format::ZabbixExport,
        path: path.clone(),
    }];
    let (records, _) = run(&inputs, None);
    assert!(stdout == records, "replay's output differs: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_is_named() {
    let (code, _, stderr) = slaflow(&["replay", "zabbix-export=/nonexistent/x.ndjson"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent/x.ndjson: No such file"), "{stderr}");
}
