//! HdrHistogram's V2 encoding read and written as the buckets it counts, without a dense
//! histogram in between. Merging an hour into its day (and a day into its month) by decoding
//! both into dense histograms of the configured range (22 528 counters, 176 KiB zeroed each,
//! for the default hour at 3 digits) and encoding the sum was most of the SLA engine's time
//! at a window close; a day holds a few hundred buckets. The bytes written are exactly those
//! `hdrhistogram`'s `V2DeflateSerializer` writes for a histogram with the same counts and
//! header (the tests compare them), so nothing else can tell which path wrote them.

use std::io::{Read as _, Write as _};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::{HistogramError, V2_COMPRESSED_COOKIE, V2_COOKIE, V2_HEADER_LEN};

/// The counts of a V2 encoding with lowest discernible value 1, no normalizing offset and a
/// conversion ratio of 1 (what every histogram of this engine is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counts {
    /// Significant decimal digits.
    pub digits: u8,
    /// Highest trackable value of the header.
    pub high: u64,
    /// (counts index, count), ascending, no zero counts.
    pub buckets: Vec<(u32, u64)>,
}

/// Most counters an encoding may claim (the 1-hour range at 5 digits has 2.3 M): a
/// corrupt run of zeros cannot make a merge allocate or loop without bound.
const MAX_INDEX: u64 = 1 << 26;

/// Reads V2 bytes (compressed or not). `None`: a valid header of another form (another
/// lowest value, an offset, a ratio), which the dense path handles.
pub(super) fn read(bytes: &[u8]) -> Result<Option<Counts>, HistogramError> {
    let bad = |what: String| HistogramError::Decode(what);
    let cookie = word(bytes, 0).ok_or_else(|| bad(format!("{} bytes is too short for a V2 header", bytes.len())))?;
    let inflated;
    let plain: &[u8] = match cookie {
        V2_COOKIE => bytes,
        V2_COMPRESSED_COOKIE => {
            let mut out = Vec::new();
            ZlibDecoder::new(bytes.get(8..).unwrap_or_default())
                .take(MAX_INDEX * 9 + V2_HEADER_LEN as u64)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("inflate: {e}")))?;
            inflated = out;
            &inflated
        }
        other => return Err(bad(format!("unknown cookie {other:#010x}"))),
    };
    if word(plain, 0) != Some(V2_COOKIE) || plain.len() < V2_HEADER_LEN {
        return Err(bad("the compressed payload is not a V2 encoding".into()));
    }
    let len = word(plain, 4).unwrap_or(0) as usize;
    let offset = word(plain, 8).unwrap_or(0);
    let digits = word(plain, 12).unwrap_or(0);
    let low = long(plain, 16).unwrap_or(0);
    let high = long(plain, 24).unwrap_or(0);
    let ratio = long(plain, 32).map(f64::from_bits).unwrap_or(0.0);
    let payload = plain
        .get(V2_HEADER_LEN..V2_HEADER_LEN + len)
        .ok_or_else(|| bad(format!("header claims {len} payload bytes")))?;
    if offset != 0 || low != 1 || ratio != 1.0 || !(1..=5).contains(&digits) {
        return Ok(None);
    }
    let buckets = read_buckets(payload)?;
    Ok(Some(Counts {
        digits: digits as u8,
        high,
        buckets,
    }))
}

/// The payload's counts: zig-zag LEB128 numbers, a negative one a run of zeros.
fn read_buckets(mut payload: &[u8]) -> Result<Vec<(u32, u64)>, HistogramError> {
    let mut buckets = Vec::new();
    let mut index: u64 = 0;
    while !payload.is_empty() {
        let (zz, used) = varint(payload).ok_or_else(|| HistogramError::Decode("truncated count".into()))?;
        payload = &payload[used..];
        let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if n < 0 {
            index = index.saturating_add(n.unsigned_abs());
        } else {
            if n > 0 {
                let at = u32::try_from(index).map_err(|_| HistogramError::Decode(format!("index {index}")))?;
                buckets.push((at, n as u64));
            }
            index += 1;
        }
        if index > MAX_INDEX {
            return Err(HistogramError::Decode(format!("more than {MAX_INDEX} counters")));
        }
    }
    Ok(buckets)
}

/// One of HdrHistogram's LEB128 numbers (at most 9 bytes, the ninth all 8 bits): (value, bytes).
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let b = *buf.get(i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    Some((value | (u64::from(*buf.get(8)?) << 56), 9))
}

/// Compressed V2 bytes of a histogram with lowest discernible value 1, `digits` and `high`
/// in its header and these counts (ascending indices, no zeros).
pub(super) fn write(digits: u8, high: u64, buckets: &[(u32, u64)]) -> Result<Vec<u8>, HistogramError> {
    let mut plain = Vec::with_capacity(V2_HEADER_LEN + 2 * buckets.len() * 4 + 1);
    plain.extend_from_slice(&V2_COOKIE.to_be_bytes());
    plain.extend_from_slice(&0u32.to_be_bytes()); // payload length, below
    plain.extend_from_slice(&0u32.to_be_bytes());
    plain.extend_from_slice(&u32::from(digits).to_be_bytes());
    plain.extend_from_slice(&1u64.to_be_bytes());
    plain.extend_from_slice(&high.to_be_bytes());
    plain.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
    write_buckets(buckets, &mut plain)?;
    let len = u32::try_from(plain.len() - V2_HEADER_LEN).map_err(|_| HistogramError::Encode("too long".into()))?;
    plain[4..8].copy_from_slice(&len.to_be_bytes());

    let mut out = Vec::with_capacity(plain.len() / 2 + 16);
    out.extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut z = ZlibEncoder::new(out, Compression::default());
    z.write_all(&plain).map_err(|e| HistogramError::Encode(e.to_string()))?;
    let mut out = z.finish().map_err(|e| HistogramError::Encode(e.to_string()))?;
    let len = u32::try_from(out.len() - 8).map_err(|_| HistogramError::Encode("too long".into()))?;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out.shrink_to_fit();
    Ok(out)
}

/// The counts up to the last bucket as the serializer writes them: a zero alone as 0, a
/// longer run of zeros as its negated length. No bucket: the one zero counter of an empty
/// histogram.
fn write_buckets(buckets: &[(u32, u64)], out: &mut Vec<u8>) -> Result<(), HistogramError> {
    if buckets.is_empty() {
        out.push(0);
        return Ok(());
    }
    let mut next: u32 = 0;
    for &(index, count) in buckets {
        let zeros = i64::from(index - next);
        match zeros {
            0 => {}
            1 => put_varint(0, out),
            n => put_varint(zig_zag(-n), out),
        }
        let count = i64::try_from(count).map_err(|_| HistogramError::Encode("a count above i64::MAX".into()))?;
        put_varint(zig_zag(count), out);
        next = index + 1;
    }
    Ok(())
}

fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    for _ in 0..8 {
        if value < 0x80 {
            out.push(value as u8);
            return;
        }
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Adds `more` into `into` (both ascending), each index first capped at `cap` (values above
/// the highest trackable count at its bucket, as the dense merge clamps them).
pub(super) fn add(into: &[(u32, u64)], more: impl IntoIterator<Item = (u32, u64)>, cap: u32) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64)> = Vec::with_capacity(into.len() + 8);
    let mut a = into.iter().map(|&(i, c)| (i.min(cap), c)).peekable();
    let mut b = more.into_iter().map(|(i, c)| (i.min(cap), c)).peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        let Some((index, count)) = next else { break };
        match out.last_mut() {
            Some(last) if last.0 == index => last.1 = last.1.saturating_add(count),
            _ => out.push((index, count)),
        }
    }
    out
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn long(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}
