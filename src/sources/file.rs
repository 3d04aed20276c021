//! Files as a source: a file is cut into records by the format's framing (one per line for
//! NDJSON formats, the whole file otherwise), each record with its file and line.
//! `FileRecords` reads and frames a file incrementally, so an NDJSON file of any size is
//! held one line at a time; `records` frames bytes already in memory (the reference the
//! streaming framer is tested against, and what the golden tests and fuzz targets use).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::decode::Framing;

/// How much `FileRecords` asks the operating system for at a time unless told otherwise.
pub const READ_BUFFER: usize = 256 * 1024;

/// One record of a file: its bytes and 1-based first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub bytes: &'a [u8],
    pub line: u64,
}

/// A file that could not be opened or read, with where reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened (or its size read).
    #[error("{}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    /// Reading failed part-way: `line` is the line being read, `offset` the bytes read
    /// before the failure.
    #[error("{}: line {line} (byte {offset}): {source}", path.display())]
    Read {
        path: PathBuf,
        line: u64,
        offset: u64,
        source: std::io::Error,
    },
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
            .filter(|(_, line)| !is_blank(line))
            .map(|(i, bytes)| Record {
                bytes,
                line: i as u64 + 1,
            })
            .collect(),
    }
}

/// A line of only ASCII whitespace (or none) is not a record.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The records of one file, read and framed incrementally: the same records, with the same
/// lines, as `records` gives for the whole content. Memory is the read buffer plus the
/// longest line for NDJSON; a document-framed file is one record and is held whole.
pub struct FileRecords<R> {
    reader: R,
    path: PathBuf,
    framing: Framing,
    /// Bytes read and not yet handed out: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// How much to ask for per read.
    chunk: usize,
    /// Bytes read from `reader` so far.
    read: u64,
    /// Lines passed so far (the next line's number is `line + 1`).
    line: u64,
    eof: bool,
    /// A document has been handed out (a document file is one record, even when empty).
    done: bool,
}

impl FileRecords<File> {
    /// Opens `path` for framing as `framing`, reading `chunk` bytes at a time.
    pub fn open(path: &Path, framing: Framing, chunk: usize) -> Result<FileRecords<File>, FileError> {
        let file = File::open(path).map_err(|source| FileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut records = FileRecords::new(file, path, framing, chunk);
        if framing == Framing::Document {
            // Held whole: one allocation of its size (and a read's worth past it, where the
            // end is found) rather than doublings up to twice its size.
            let len = usize::try_from(size(path)).unwrap_or(0);
            records.buf.reserve_exact(len.saturating_add(records.chunk));
        }
        Ok(records)
    }
}

/// The size of the file at `path` (0 when it has none, a pipe say): what a progress bar
/// measures bytes read against.
pub fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl<R: Read> FileRecords<R> {
    /// Frames what `reader` gives as `framing`; `path` names it in errors.
    pub fn new(reader: R, path: &Path, framing: Framing, chunk: usize) -> FileRecords<R> {
        FileRecords {
            reader,
            path: path.to_path_buf(),
            framing,
            buf: Vec::new(),
            start: 0,
            end: 0,
            chunk: chunk.max(1),
            read: 0,
            line: 0,
            eof: false,
            done: false,
        }
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, FileError> {
        match self.framing {
            Framing::Document => self.document(),
            Framing::Lines => self.next_line(),
        }
    }

    /// The whole file as one record, once.
    fn document(&mut self) -> Result<Option<Record<'_>>, FileError> {
        if self.done {
            return Ok(None);
        }
        while !self.eof {
            self.fill()?;
        }
        self.done = true;
        Ok(Some(Record {
            bytes: &self.buf[self.start..self.end],
            line: 1,
        }))
    }

    /// The next non-blank line (without its `\n`), reading more until a line is complete.
    fn next_line(&mut self) -> Result<Option<Record<'_>>, FileError> {
        // Where the search for `\n` resumes: bytes before it are known to hold none.
        let mut searched = self.start;
        loop {
            if let Some(pos) = self.buf[searched..self.end].iter().position(|&b| b == b'\n') {
                let (from, to) = (self.start, searched + pos);
                self.start = to + 1;
                self.line += 1;
                if is_blank(&self.buf[from..to]) {
                    searched = self.start;
                    continue;
                }
                return Ok(Some(Record {
                    bytes: &self.buf[from..to],
                    line: self.line,
                }));
            }
            if self.eof {
                return Ok(self.last_line());
            }
            searched = self.end;
            let kept = self.start;
            self.fill()?;
            searched -= kept - self.start;
        }
    }

    /// What follows the last `\n`: a record unless blank.
    fn last_line(&mut self) -> Option<Record<'_>> {
        let (from, to) = (self.start, self.end);
        self.start = self.end;
        if from == to || is_blank(&self.buf[from..to]) {
            return None;
        }
        self.line += 1;
        Some(Record {
            bytes: &self.buf[from..to],
            line: self.line,
        })
    }

    /// Reads up to `chunk` more bytes after `end`, first moving what is unread to the front
    /// (a line keeps only its own bytes, not the lines before it); sets `eof` at the end.
    fn fill(&mut self) -> Result<(), FileError> {
        if self.start > 0 && self.framing == Framing::Lines {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + self.chunk {
            self.buf.resize(self.end + self.chunk, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..self.end + self.chunk]) {
                Ok(0) => {
                    self.eof = true;
                    // The buffer grew for reads; what it holds past `end` is never used.
                    self.buf.truncate(self.end);
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FileError::Read {
                        path: self.path.clone(),
                        line: self.line + 1,
                        offset: self.read,
                        source,
                    })
                }
            }
        }
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

    /// Every record `FileRecords` gives, owned.
    fn streamed(content: &[u8], framing: Framing, chunk: usize) -> Vec<(Vec<u8>, u64)> {
        let mut file = FileRecords::new(content, Path::new("t"), framing, chunk);
        let mut out = Vec::new();
        while let Some(r) = file.next_record().unwrap() {
            out.push((r.bytes.to_vec(), r.line));
        }
        assert_eq!(file.bytes_read(), content.len() as u64);
        out
    }

    #[test]
    fn streaming_gives_the_records_of_the_whole_content_whatever_the_buffer() {
        let contents: [&[u8]; 9] = [
            b"",
            b"\n",
            b"   \n\t\n",
            b"{\"a\":1}",
            b"{\"a\":1}\n",
            b"{\"a\":1}\n\n  \n{\"b\":2}\r\n",
            b"\n\nx\n  y  \n\n\nzzzzzzzzzzzzzzzzzzzz\n \r\nlast",
            b"a\nbb\nccc\ndddd\neeeee\nffffff\n",
            b"\xff\xfe\n\x00\n",
        ];
        for content in contents {
            for framing in [Framing::Lines, Framing::Document] {
                let whole: Vec<(Vec<u8>, u64)> = records(content, framing)
                    .into_iter()
                    .map(|r| (r.bytes.to_vec(), r.line))
                    .collect();
                for chunk in [1, 2, 3, 5, 7, 64, READ_BUFFER] {
                    assert_eq!(streamed(content, framing, chunk), whole, "{content:?} {chunk}");
                }
            }
        }
    }

    /// A reader that fails after `ok` bytes.
    struct Failing {
        ok: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.ok == 0 {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.ok);
            buf[..n].fill(b'\n');
            buf[n - 1] = b'x';
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_names_the_file_the_line_and_the_offset() {
        let mut file = FileRecords::new(Failing { ok: 4 }, Path::new("big.ndjson"), Framing::Lines, 4);
        let err = loop {
            match file.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the reader fails"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.to_string(), "big.ndjson: line 4 (byte 4): disk gone");
    }
}
