//! `slaflow dead-letters list|show|replay|purge`: what could not be taken, read from the
//! configured store and worked on there. `replay` re-submits dead letters to a running
//! service's `POST /v1/ingest/{format}` (the decode path every input takes), so that after a
//! fix (a config change, a new version) what decodes now is processed like any body, and
//! removes each one the service stored.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use slaflow::config::Config;
use slaflow::decode::Format;
use slaflow::server::REPLAY_HEADER;
use slaflow::sinks::{DeadLetter, DeadLetterFilter, DeadLetterRow, Store};

use super::{http, load_config, open_existing_store, runtime, status};

/// The filters every subcommand but `show` takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filters {
    /// Only dead letters of this format.
    #[arg(long, short)]
    pub format: Option<Format>,
    /// A reason class (`syntax`, `missing_field`, `wrong_type`, `invalid_value`), or text the
    /// reason contains.
    #[arg(long)]
    pub reason: Option<String>,
    /// Received at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// `http`, `kafka`, `file`, or a topic, file path or HTTP endpoint (exactly).
    #[arg(long)]
    pub origin: Option<String>,
}

impl Filters {
    /// The store's filter; an unreadable time is an error naming its option.
    fn to_filter(&self) -> Result<DeadLetterFilter, String> {
        let time = |option: &str, text: &Option<String>| {
            text.as_ref()
                .map(|t| {
                    slaflow::time::from_rfc3339(t)
                        .ok_or_else(|| format!("--{option}: expected an RFC 3339 time, found {t:?}"))
                })
                .transpose()
        };
        Ok(DeadLetterFilter {
            format: self.format.map(|f| f.name().to_string()),
            reason: self.reason.clone(),
            since_ns: time("since", &self.since)?,
            until_ns: time("until", &self.until)?,
            origin: self.origin.clone(),
        })
    }
}

/// The store of the configuration at `config`, migrated (an older service's store gains
/// the columns these commands read).
async fn store(config: &Config) -> Result<Store, String> {
    let mut store = open_existing_store(config).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// `list`: one line per dead letter (id, received, origin, format, size, reason), or one
/// JSON object per line with `json`. Exit status 1 when none matches.
pub fn list(config: PathBuf, filters: &Filters, json: bool) -> Result<ExitCode, String> {
    let (config, filter) = (load_config(Some(config))?, filters.to_filter()?);
    let rows = runtime()?.block_on(async {
        let store = store(&config).await?;
        store.dead_letters(&filter).await.map_err(|e| e.to_string())
    })?;
    for row in &rows {
        if json {
            println!("{}", as_json(row));
        } else {
            println!("{}", line(row));
        }
    }
    if rows.is_empty() {
        eprintln!("no dead letter matches");
    }
    Ok(status(!rows.is_empty()))
}

/// `show ID`: every field, then the payload (as text when it is UTF-8, else a hex dump).
pub fn show(config: PathBuf, id: i64) -> Result<ExitCode, String> {
    let config = load_config(Some(config))?;
    let row = runtime()?.block_on(async {
        let store = store(&config).await?;
        store.dead_letter(id).await.map_err(|e| e.to_string())
    })?;
    let Some(row) = row else {
        return Err(format!("no dead letter with id {id}"));
    };
    print!("{}", details(&row));
    Ok(ExitCode::SUCCESS)
}

/// `purge`: deletes what the filters select (`all` when none is given); prints how many.
pub fn purge(config: PathBuf, filters: &Filters, all: bool) -> Result<ExitCode, String> {
    let (config, filter) = (load_config(Some(config))?, filters.to_filter()?);
    if filter.is_empty() && !all {
        return Err("purge needs a filter (--format, --reason, --since, --until, --origin) or --all".into());
    }
    let deleted = runtime()?.block_on(async {
        let store = store(&config).await?;
        let ids: Vec<i64> = store
            .dead_letters(&filter)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.id)
            .collect();
        store.delete_dead_letters(&ids).await.map_err(|e| e.to_string())
    })?;
    println!("purged {deleted} dead letters");
    Ok(ExitCode::SUCCESS)
}

/// Where `replay` sends, and as whom.
pub struct Target {
    /// The service's URL (`http://host:port`); default: the config's `[server] listen`.
    pub url: Option<String>,
    /// The bearer token; default: the first of the config's `[server] tokens`
    /// (SLAFLOW_API_TOKENS overrides them).
    pub token: Option<String>,
}

/// What became of the dead letters `replay` sent.
#[derive(Debug, Default)]
struct Replayed {
    stored: u64,
    kept: u64,
}

/// `replay`: posts each selected dead letter's payload to `/v1/ingest/{format}` of the
/// running service. 200 (also a partial success: the service keeps the newly rejected part
/// as a new dead letter itself): stored, so the dead letter is removed; 4xx: kept, with the
/// service's reason; 5xx or no answer: kept, and the replay stops (the rest would fare the
/// same). Exit status 1 when any was kept.
pub fn replay(config: PathBuf, filters: &Filters, target: Target) -> Result<ExitCode, String> {
    let (config, filter) = (load_config(Some(config))?, filters.to_filter()?);
    let server = http::server_of(&target.url.unwrap_or_else(|| local_url(&config.server.listen)))?;
    let token = target
        .token
        .or_else(|| config.server.effective_tokens().into_iter().next())
        .unwrap_or_default();
    let done = runtime()?.block_on(async {
        let store = store(&config).await?;
        let rows = store.dead_letters(&filter).await.map_err(|e| e.to_string())?;
        let mut done = Replayed::default();
        for row in rows {
            match resubmit(&store, &server, &token, row.id).await? {
                Some(true) => done.stored += 1,
                Some(false) => done.kept += 1,
                None => {
                    done.kept += 1;
                    break;
                }
            }
        }
        Ok::<_, String>(done)
    })?;
    println!(
        "replayed {}: {} stored and removed, {} kept",
        done.stored + done.kept,
        done.stored,
        done.kept
    );
    Ok(status(done.kept == 0))
}

/// Posts one dead letter and removes it when the service stored it: `Some(true)` stored,
/// `Some(false)` refused (4xx, kept), `None` when the service failed (5xx or no answer:
/// kept, and the replay should stop). Each outcome is printed.
async fn resubmit(store: &Store, server: &str, token: &str, id: i64) -> Result<Option<bool>, String> {
    // Gone since the listing (another replay, a purge): nothing to do.
    let Some(row) = store.dead_letter(id).await.map_err(|e| e.to_string())? else {
        return Ok(Some(true));
    };
    let letter = &row.letter;
    let path = format!("/v1/ingest/{}", letter.format);
    let id_text = id.to_string();
    let headers = [
        ("Content-Type", "application/octet-stream"),
        (REPLAY_HEADER, id_text.as_str()),
    ];
    let answer = match http::post(server, &path, token, &headers, &letter.payload) {
        Ok(answer) => answer,
        Err(e) => {
            println!("kept {id}: {e}");
            return Ok(None);
        }
    };
    match answer.status {
        200 => {
            store.delete_dead_letters(&[id]).await.map_err(|e| e.to_string())?;
            println!("stored {id} ({}): {}", letter.format, answer.body);
            Ok(Some(true))
        }
        400..=499 => {
            println!("kept {id} ({}): {} {}", letter.format, answer.status, answer.body);
            Ok(Some(false))
        }
        status => {
            println!("kept {id} ({}): {status} {}; stopping", letter.format, answer.body);
            Ok(None)
        }
    }
}

/// `http://` and the listen address, a wildcard one made the local host's.
fn local_url(listen: &str) -> String {
    let local = listen
        .strip_prefix("0.0.0.0:")
        .or_else(|| listen.strip_prefix("[::]:"))
        .map_or_else(|| listen.to_string(), |port| format!("127.0.0.1:{port}"));
    format!("http://{local}")
}

/// Where a dead letter came from, in one phrase: `http /v1/ingest/x from 10.0.0.5:40112`,
/// `alerts/0@17` (topic/partition@offset, plus the HTTP origin of a forwarded body),
/// `path:line`.
fn origin_text(d: &DeadLetter) -> String {
    let mut text = if d.partition >= 0 {
        format!("{}/{}@{}", d.origin, d.partition, d.offset)
    } else if d.origin == "http" {
        "http".to_string()
    } else {
        format!("{}:{}", d.origin, d.offset)
    };
    if let Some(endpoint) = &d.endpoint {
        let _ = write!(text, " {endpoint}");
    }
    if let Some(addr) = &d.remote_addr {
        let _ = write!(text, " from {addr}");
    }
    if d.seq > 0 {
        let _ = write!(text, " #{}", d.seq);
    }
    text
}

/// A receive time as RFC 3339, `-` for none (a replayed file's records).
fn received_text(ns: i64) -> String {
    if ns == 0 {
        "-".into()
    } else {
        slaflow::time::to_rfc3339(ns)
    }
}

/// `list`'s line: id, received, origin, format, size, the first reason (and how many more).
fn line(row: &DeadLetterRow) -> String {
    let d = &row.letter;
    let mut reasons = d.reason.lines();
    let first = reasons.next().unwrap_or_default();
    let more = reasons.count();
    let more = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    format!(
        "{}\t{}\t{}\t{}\t{} B\t{first}{more}",
        row.id,
        received_text(d.received_ns),
        origin_text(d),
        d.format,
        row.size
    )
}

/// `list --json`'s object.
fn as_json(row: &DeadLetterRow) -> serde_json::Value {
    let d = &row.letter;
    serde_json::json!({
        "id": row.id,
        "received": (d.received_ns != 0).then(|| slaflow::time::to_rfc3339(d.received_ns)),
        "received_ns": d.received_ns,
        "origin": d.origin,
        "partition": d.partition,
        "offset": d.offset,
        "seq": d.seq,
        "endpoint": d.endpoint,
        "remote_addr": d.remote_addr,
        "format": d.format,
        "reason": d.reason,
        "size": row.size,
    })
}

/// `show`'s text: one field per line, every reason, then the payload.
fn details(row: &DeadLetterRow) -> String {
    let d = &row.letter;
    let mut out = String::new();
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "id:          {}", row.id);
    let _ = writeln!(out, "received:    {}", received_text(d.received_ns));
    let _ = writeln!(out, "origin:      {}", d.origin);
    let _ = writeln!(out, "partition:   {}", d.partition);
    let _ = writeln!(out, "offset:      {}", d.offset);
    let _ = writeln!(out, "seq:         {}", d.seq);
    let _ = writeln!(out, "endpoint:    {}", optional(&d.endpoint));
    let _ = writeln!(out, "remote addr: {}", optional(&d.remote_addr));
    let _ = writeln!(out, "format:      {}", d.format);
    let _ = writeln!(out, "size:        {} B", row.size);
    out.push_str("reason:\n");
    for reason in d.reason.lines() {
        let _ = writeln!(out, "  {reason}");
    }
    match std::str::from_utf8(&d.payload) {
        Ok(text) => {
            let _ = writeln!(out, "payload (text):\n{text}");
        }
        Err(_) => {
            let _ = write!(out, "payload (hex):\n{}", hex_dump(&d.payload));
        }
    }
    out
}

/// `xxd`-style lines: offset, 16 bytes in hex, the printable ones as text.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let _ = writeln!(out, "{:08x}  {:<47}  {text}", i * 16, hex.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_are_dumped_in_hex() {
        let dump = hex_dump(&[0x0a, 0x00, b'h', b'i', 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41]);
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("00000000  0a 00 68 69 ff 10"), "{}", lines[0]);
        assert!(lines[0].ends_with("..hi............"), "{}", lines[0]);
        assert_eq!(lines[1], format!("00000010  41{}  A", " ".repeat(45)));
    }

    #[test]
    fn origins_read_as_where_they_came_from() {
        let http = DeadLetter {
            origin: "http".into(),
            partition: -1,
            endpoint: Some("/v1/ingest/alertmanager".into()),
            remote_addr: Some("10.0.0.5:40112".into()),
            ..DeadLetter::default()
        };
        assert_eq!(origin_text(&http), "http /v1/ingest/alertmanager from 10.0.0.5:40112");
        let kafka = DeadLetter {
            origin: "alerts".into(),
            partition: 2,
            offset: 17,
            seq: 1,
            ..DeadLetter::default()
        };
        assert_eq!(origin_text(&kafka), "alerts/2@17 #1");
        assert_eq!(local_url("0.0.0.0:9464"), "http://127.0.0.1:9464");
        assert_eq!(local_url("10.1.2.3:80"), "http://10.1.2.3:80");
    }
}
