//! What every fuzz target checks, one function per target, shared by the cargo-fuzz binaries
//! (`fuzz_targets/`) and the regression test that replays their findings
//! (`tests/fuzz_regressions.rs` includes this file). A check panics when the property fails:
//! libFuzzer reports the panic as a crash, the test as a failure naming the input.

use slaflow::decode::{datadog_apm, datadog_msgpack, DecodeError, Decoded, Decoders, Format, Framing};
use slaflow::server::encoding;
use slaflow::sources::file::records;

/// Every target that is not one decoder format (those are named after their format).
pub const OTHER_TARGETS: [&str; 4] = ["lines", "datadog_apm_diff", "datadog_msgpack_diff", "http_body"];

/// Runs the check of `target` (a format's name with `_` for `-`, or one of `OTHER_TARGETS`)
/// on one input. `false` for a target that does not exist.
pub fn check(target: &str, data: &[u8]) -> bool {
    match target {
        "lines" => lines(data),
        "datadog_apm_diff" => datadog_apm_diff(data),
        "datadog_msgpack_diff" => datadog_msgpack_diff(data),
        "http_body" => http_body(data),
        _ => match target.replace('_', "-").parse::<Format>() {
            Ok(format) => decoder(format, data),
            Err(_) => return false,
        },
    }
    true
}

/// One record of `format`: Ok, or a DecodeError that names this format and says what is
/// wrong; never a panic. Rejected items say so the same way.
pub fn decoder(format: Format, data: &[u8]) {
    match Decoders::default().decode(format, data) {
        Ok(decoded) => {
            for item in &decoded.rejected {
                well_formed(format, &item.error);
            }
        }
        Err(error) => well_formed(format, &error),
    }
}

/// A DecodeError of `format` that says what is wrong.
pub fn well_formed(format: Format, error: &DecodeError) {
    assert_eq!(error.format, format, "an error of another format: {error}");
    assert!(!error.message.is_empty(), "an error that says nothing: {error:?}");
}

/// The line framing: the first byte picks the line format (even zabbix-export, odd icinga2),
/// the rest is a file. Every record is one non-blank line of it, at its own 1-based line
/// number, in order; each decodes as `decoder` requires.
pub fn lines(data: &[u8]) {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let format = if pick % 2 == 0 {
        Format::ZabbixExport
    } else {
        Format::Icinga2
    };
    assert_eq!(format.framing(), Framing::Lines);
    let lines: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    let mut previous = 0;
    for record in records(content, Framing::Lines) {
        assert!(record.line > previous, "line {} after line {previous}", record.line);
        previous = record.line;
        assert_eq!(
            lines[record.line as usize - 1],
            record.bytes,
            "not line {}",
            record.line
        );
        assert!(
            !record.bytes.iter().all(u8::is_ascii_whitespace),
            "blank line {} kept",
            record.line
        );
        decoder(format, record.bytes);
    }
}

/// Datadog JSON traces: the in-place reader (`decode`, via `json_walk`) gives exactly what
/// the serde path gives (the proptest `datadog_apm::tests::same_as_serde`, on any bytes).
pub fn datadog_apm_diff(data: &[u8]) {
    agree(datadog_apm::decode(data), datadog_apm::decode_serde(data), true);
}

/// Datadog MessagePack traces: the fast paths (`msgpack_walk` for v0.4, the whole-payload
/// serde pass for v0.5) give the events and the number of rejected spans that span-by-span
/// decoding gives (the proptest `datadog_msgpack::tests::same_as_serde`, on any bytes).
pub fn datadog_msgpack_diff(data: &[u8]) {
    agree(
        datadog_msgpack::decode(data),
        datadog_msgpack::decode_span_by_span(data),
        false,
    );
}

/// Both Ok with the same events and as many rejected items (the same items when `exact`), or
/// both an error.
pub fn agree(fast: Result<Decoded, DecodeError>, slow: Result<Decoded, DecodeError>, exact: bool) {
    match (&fast, &slow) {
        (Ok(f), Ok(s)) if exact => assert_eq!(f, s, "the fast path and the slow path differ"),
        (Ok(f), Ok(s)) => {
            assert_eq!(f.events, s.events, "the fast path and the slow path differ");
            assert_eq!(f.rejected.len(), s.rejected.len(), "rejected counts differ");
        }
        _ => assert_eq!(fast.is_err(), slow.is_err(), "one path failed: {fast:?} / {slow:?}"),
    }
}

/// The Content-Encodings `http_body` picks from with its first byte.
const ENCODINGS: [&str; 7] = ["identity", "gzip", "x-gzip", "deflate", "zstd", " GZIP ", "br"];

/// HTTP body decompression (`server::encoding::decode`): byte 0 picks the encoding, bytes 1-2
/// the limit (0..65535), the rest is the body. A compressed body comes out within the limit
/// or is refused as too large or corrupt; identity passes through unchanged (its size is
/// bounded before, by the request body limit); an unknown encoding is unsupported.
pub fn http_body(data: &[u8]) {
    let [pick, hi, lo, body @ ..] = data else {
        return;
    };
    let name = ENCODINGS[usize::from(*pick) % ENCODINGS.len()];
    let limit = usize::from(u16::from_be_bytes([*hi, *lo]));
    match (name, encoding::decode(name, body, limit)) {
        ("identity", Ok(out)) => assert_eq!(out, body),
        ("br", result) => assert!(matches!(result, Err(encoding::Error::Unsupported(_)))),
        (_, Ok(out)) => assert!(out.len() <= limit, "{} bytes over the limit {limit}", out.len()),
        (_, Err(encoding::Error::TooLarge | encoding::Error::Corrupt(..))) => {}
        (_, Err(e)) => panic!("{name}: unexpected {e}"),
    }
}
