//! `slaflow decode`: input files through one format's decoder, the canonical events as JSON
//! lines on stdout, rejected records on stderr with their file and line.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use slaflow::decode::{Decoders, Format};
use slaflow::sources::file;

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
    for path in files {
        decode_file(&decoders, format, path, &mut out, &mut counts)?;
    }
    out.flush().map_err(|e| e.to_string())?;
    let Counts {
        records,
        events,
        rejected,
    } = counts;
    eprintln!("{records} records, {events} events, {rejected} rejected");
    Ok(status(rejected == 0))
}

/// One file's records: events to `out`, rejections to stderr, both counted. An unreadable
/// file or a failed write ends the run.
fn decode_file(
    decoders: &Decoders,
    format: Format,
    path: &Path,
    out: &mut impl Write,
    counts: &mut Counts,
) -> Result<(), String> {
    let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for record in file::records(&content, format.framing()) {
        counts.records += 1;
        match decoders.decode(format, record.bytes) {
            Ok(decoded) => {
                for item in decoded.rejected {
                    counts.rejected += 1;
                    eprintln!("{}: {}", path.display(), item.error.at_line(record.line));
                }
                for event in decoded.events {
                    counts.events += 1;
                    serde_json::to_writer(&mut *out, &event).map_err(|e| e.to_string())?;
                    out.write_all(b"\n").map_err(|e| e.to_string())?;
                }
            }
            Err(err) => {
                counts.rejected += 1;
                eprintln!("{}: {}", path.display(), err.at_line(record.line));
            }
        }
    }
    Ok(())
}
