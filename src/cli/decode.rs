//! `slaflow decode`: input files through one format's decoder, the canonical events as JSON
//! lines on stdout, rejected records on stderr with their file and line. Files are read
//! and framed incrementally (`FileRecords`): an NDJSON file is held a line at a time.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use slaflow::decode::{Decoders, Format};
use slaflow::sources::file::{self, FileRecords};

use super::{load_config, status};

/// What the files held, for the closing line on stderr.
#[derive(Default)]
struct Counts {
    records: u64,
    events: u64,
    rejected: u64,
}

/// Decodes `files` as `format`, with the decoder options of `config`; exit status 1 when
/// any record was rejected.
pub fn run(format: Format, config: Option<PathBuf>, files: &[PathBuf]) -> Result<ExitCode, String> {
    let config = load_config(config)?;
    let decoders = Decoders::new(config.decoders);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut counts = Counts::default();
    let total = files.iter().map(|p| file::size(p)).sum();
    // Bytes read against the files' sizes: the ETA holds whatever the records' sizes.
    let bar = slaflow::term::progress_bar(
        total,
        "{spinner} decode [{bar:40}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}",
    );
    for path in files {
        decode_file(&decoders, format, path, &mut out, &mut counts, &bar)?;
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| e.to_string())?;
    let Counts {
        records,
        events,
        rejected,
    } = counts;
    eprintln!("{records} records, {events} events, {rejected} rejected");
    Ok(status(rejected == 0))
}

/// One file's records: events to `out`, rejections to stderr, both counted; `bar` moves by
/// the bytes read. An unreadable file or a failed write ends the run.
fn decode_file(
    decoders: &Decoders,
    format: Format,
    path: &Path,
    out: &mut impl Write,
    counts: &mut Counts,
    bar: &indicatif::ProgressBar,
) -> Result<(), String> {
    let mut records = FileRecords::open(path, format.framing(), file::READ_BUFFER).map_err(|e| e.to_string())?;
    let start = bar.position();
    while let Some(record) = records.next_record().map_err(|e| e.to_string())? {
        counts.records += 1;
        match decoders.decode(format, record.bytes) {
            Ok(decoded) => {
                for item in decoded.rejected {
                    counts.rejected += 1;
                    bar.suspend(|| eprintln!("{}: {}", path.display(), item.error.at_line(record.line)));
                }
                for event in decoded.events {
                    counts.events += 1;
                    serde_json::to_writer(&mut *out, &event).map_err(|e| e.to_string())?;
                    out.write_all(b"\n").map_err(|e| e.to_string())?;
                }
            }
            Err(err) => {
                counts.rejected += 1;
                bar.suspend(|| eprintln!("{}: {}", path.display(), err.at_line(record.line)));
            }
        }
        bar.set_position(start + records.bytes_read());
    }
    Ok(())
}
