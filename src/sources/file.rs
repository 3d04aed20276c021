//! Files as a source: a file is cut into records by the format's framing (one per line for
//! NDJSON formats, the whole file otherwise), each record with its file and line.

use crate::decode::Framing;

/// One record of a file: its bytes and 1-based first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub bytes: &'a [u8],
    pub line: u64,
}

/// Cuts `content` into records. Blank lines between NDJSON records are not records.
pub fn records(content: &[u8], framing: Framing) -> Vec<Record<'_>> {
    match framing {
        Framing::Document => vec![Record {
            bytes: content,
            line: 1,
        }],
        Framing::Lines => content
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, bytes)| Record {
                bytes,
                line: i as u64 + 1,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_numbers() {
        let recs = records(b"{\"a\":1}\n\n  \n{\"b\":2}\r\n", Framing::Lines);
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].line, recs[1].line), (1, 4));
        assert_eq!(records(b"x\ny", Framing::Document).len(), 1);
    }
}
