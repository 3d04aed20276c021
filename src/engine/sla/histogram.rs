//! Latency histograms for SLA windows: the `[sla.histogram]` config, recording durations (ns → µs, clamped),
//! the standard HdrHistogram V2 compressed wire/storage encoding, merging of compressed aggregates and
//! summaries (count, mean, p50/p95/p99, max) in nanoseconds.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::{Counter, Histogram};

mod sparse;

/// Cookie of uncompressed V2 (`0x1c849303` with the 8-byte word-size nibble that every implementation writes).
const V2_COOKIE: u32 = 0x1c84_9313;
/// Cookie of compressed V2 (`0x1c849304` with the 8-byte word-size nibble that every implementation writes).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Size of the uncompressed V2 header (cookie, payload length, offset, digits, low, high, ratio).
const V2_HEADER_LEN: usize = 40;
/// Nanoseconds per recorded unit (the histogram counts microseconds).
const NS_PER_US: u64 = 1_000;

/// `[sla.histogram]` config.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    /// Significant decimal digits kept (1..=5); 3 keeps every value within 0.1 %.
    pub significant_digits: u8,
    /// Largest latency tracked; longer requests are clamped to it.
    #[serde(with = "humantime_serde")]
    pub highest_trackable: Duration,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        Self {
            significant_digits: 3,
            highest_trackable: Duration::from_secs(3600),
        }
    }
}

impl HistogramConfig {
    /// A new empty histogram (values in µs, lowest discernible 1 µs, auto-resize off, bounds from this config).
    ///
    /// Errors with [`HistogramError::Config`] (the message names the field) if the config is invalid.
    pub fn new_histogram(&self) -> Result<Histogram<u64>, HistogramError> {
        self.validate().map_err(HistogramError::Config)?;
        let mut h = Histogram::new_with_bounds(1, self.highest_trackable_us(), self.significant_digits)
            .map_err(|e| HistogramError::Config(format!("histogram bounds rejected: {e}")))?;
        h.auto(false);
        Ok(h)
    }

    /// The histogram of an open window: empty, sparse until the buckets it holds would cost
    /// more than dense 32-bit counters (see [`Open`]). Record into it with [`Open::record`],
    /// which clamps at the configured highest trackable value.
    pub fn new_open(&self) -> Result<Open, HistogramError> {
        self.validate().map_err(HistogramError::Config)?;
        Ok(Open {
            repr: Repr::Sparse(Vec::new()),
            layout: Layout::new(self.significant_digits),
        })
    }

    /// Checks the config; the error message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=5).contains(&self.significant_digits) {
            return Err(format!(
                "significant_digits must be between 1 and 5, got {:?}",
                self.significant_digits
            ));
        }
        let us = self.highest_trackable.as_micros();
        if us < 2 {
            return Err(format!(
                "highest_trackable must be at least 2µs, got {:?}",
                self.highest_trackable
            ));
        }
        // Keep µs × 1000 (reported ns) inside i64.
        if us > u128::from(u64::MAX / NS_PER_US / 2) {
            return Err(format!(
                "highest_trackable is too large (at most {}µs), got {:?}",
                u64::MAX / NS_PER_US / 2,
                self.highest_trackable
            ));
        }
        Ok(())
    }

    /// Highest trackable value in µs (whole microseconds, rounded down; saturating).
    fn highest_trackable_us(&self) -> u64 {
        u64::try_from(self.highest_trackable.as_micros()).unwrap_or(u64::MAX)
    }
}

/// Errors of histogram configuration, encoding and decoding.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    /// The `[sla.histogram]` config is invalid; the message names the field.
    #[error("invalid [sla.histogram] config: {0}")]
    Config(String),
    /// A histogram could not be encoded.
    #[error("cannot encode histogram: {0}")]
    Encode(String),
    /// Bytes (or base64 text) are not a valid V2 histogram encoding.
    #[error("cannot decode histogram: {0}")]
    Decode(String),
}

/// Converts a duration in ns to recorded µs: rounds up (1..=1000 ns → 1 µs), 0 and negatives → 0.
fn ns_to_us(duration_ns: i64) -> u64 {
    u64::try_from(duration_ns).map_or(0, |ns| ns.div_ceil(NS_PER_US))
}

/// Converts recorded µs to ns for reports (saturating at `i64::MAX`).
fn us_to_ns(us: u64) -> i64 {
    i64::try_from(us.saturating_mul(NS_PER_US)).unwrap_or(i64::MAX)
}

/// Records one duration (ns) into h, clamping as described; returns true if it was clamped.
///
/// The duration is converted to µs rounding up (1 ns..=1000 ns → 1 µs, 1001 ns → 2 µs, 0 stays 0); a
/// negative duration (clock step) is recorded as 0 and not reported as clamped. A value above
/// `h.high()` is recorded as `h.high()` and reported as clamped. A `count` of 0 records nothing.
pub fn record_ns(h: &mut Histogram<u64>, duration_ns: i64, count: u64) -> bool {
    if count == 0 {
        return false;
    }
    let us = ns_to_us(duration_ns);
    let high = h.high();
    let clamped = us > high;
    h.saturating_record_n(us.min(high), count);
    clamped
}

// ---- the open window's histogram ------------------------------------------------------------

/// Where HdrHistogram (lowest discernible value 1) counts a value: the index of its bucket in
/// the counts array, which is also its position in the V2 encoding (the format's layout, the
/// same in every implementation), and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Significant decimal digits (1..=5).
    digits: u8,
    /// log2 of half the sub-bucket count: 10 at 3 significant digits (2 048 sub-buckets).
    half_magnitude: u32,
}

impl Layout {
    fn new(significant_digits: u8) -> Layout {
        // Single-unit resolution up to 2·10^digits, rounded up to a power of two.
        let largest = 2 * 10u64.pow(u32::from(significant_digits));
        let magnitude = u64::BITS - (largest - 1).leading_zeros();
        Layout {
            digits: significant_digits,
            half_magnitude: magnitude.saturating_sub(1),
        }
    }

    /// The counts index of `value`.
    fn index_of(self, value: u64) -> u32 {
        let magnitude = self.half_magnitude + 1;
        let mask = (1u64 << magnitude) - 1;
        let bucket = (u64::BITS - magnitude) - (value | mask).leading_zeros();
        let sub_bucket = value >> bucket;
        // At most (64 - magnitude + 2) · 2^half_magnitude, 6.3 M at 5 digits: fits in u32.
        let index = ((u64::from(bucket) + 1) << self.half_magnitude) + sub_bucket - (1u64 << self.half_magnitude);
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The lowest value counted at `index`.
    fn value_of(self, index: u32) -> u64 {
        let half = 1u64 << self.half_magnitude;
        let index = u64::from(index);
        let bucket = index >> self.half_magnitude;
        let sub_bucket = (index & (half - 1)) + half;
        if bucket == 0 {
            sub_bucket - half
        } else {
            sub_bucket << (bucket - 1)
        }
    }

    /// Most buckets held sparse when the highest is counted at `index`: an eighth of the dense
    /// counters, so a quarter of their bytes (8 bytes a bucket, 4 a counter). Past it, dense
    /// costs at most four times what sparse would, and recording stays fast: a sample is a
    /// binary search over at most 1 408 buckets (11 KiB, for latencies up to 0.9 s at 3
    /// digits), a new bucket an insert into them, and an hour busy enough to fill its
    /// buckets goes dense after a few thousand samples.
    fn sparse_limit(self, index: u32) -> usize {
        self.dense_len(index) / 8
    }

    /// Counters of a dense histogram whose highest recorded value is counted at `index`: the
    /// buckets up to that one, as HdrHistogram allocates them (two halves at least).
    fn dense_len(self, index: u32) -> usize {
        let halves = (index >> self.half_magnitude) as usize + 1;
        halves.max(2) << self.half_magnitude
    }
}

/// The histogram of an open window (an hour being recorded): the counts of an HdrHistogram
/// with 32-bit counters, held sparse while that takes at most a quarter of the dense counters'
/// bytes and dense after, and 64-bit counters once a bucket would pass `u32::MAX`.
///
/// A service's open hour sees a few hundred distinct buckets at typical traffic, while dense
/// counters cover every bucket up to the largest latency seen (11 264 of them, 44 KiB, for
/// 0.9 s at 3 digits; 92 KiB for the 1-hour range): sparse, 8 bytes a bucket recorded, it is
/// a few KiB. It turns dense when the sparse form would take a quarter of the dense counters'
/// bytes (fast recording matters more than the rest of that quarter), so it never holds more
/// than the dense counters would. Either way the counts are exactly those of recording every
/// value into one HdrHistogram, and [`Open::encode`] gives the bytes that histogram encodes to.
#[derive(Debug, Clone)]
pub struct Open {
    repr: Repr,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Repr {
    /// (counts index, count) of each bucket recorded, sorted by index, no zero counts.
    Sparse(Vec<(u32, u32)>),
    /// Counters up to the largest value seen, grown as values arrive (auto-resize).
    Dense(Box<Histogram<u32>>),
    /// A bucket's count passed `u32::MAX` (4.3 billion samples of one bucket in the window,
    /// 1.2 M a second for an hour): 64-bit counters rather than a count that saturates.
    Wide(Box<Histogram<u64>>),
}

impl Open {
    /// Records `count` samples of a duration (ns), clamped at `cfg`'s highest trackable value
    /// and rounded up to µs like [`record_ns`]; returns true if it was clamped.
    pub fn record(&mut self, cfg: &HistogramConfig, duration_ns: i64, count: u32) -> bool {
        if count == 0 {
            return false;
        }
        let us = ns_to_us(duration_ns);
        let high = cfg.highest_trackable_us();
        let value = us.min(high);
        let layout = self.layout;
        match &mut self.repr {
            Repr::Sparse(buckets) => {
                let index = layout.index_of(value);
                match buckets.binary_search_by_key(&index, |&(i, _)| i) {
                    Ok(at) => match buckets[at].1.checked_add(count) {
                        Some(sum) => buckets[at].1 = sum,
                        None => {
                            self.widen();
                            return self.record(cfg, duration_ns, count);
                        }
                    },
                    Err(at) => {
                        let last = buckets.last().map_or(index, |&(i, _)| i.max(index));
                        let limit = layout.sparse_limit(last);
                        if buckets.len() >= limit {
                            if let Some(dense) = dense_of(layout, buckets) {
                                self.repr = Repr::Dense(Box::new(dense));
                                return self.record(cfg, duration_ns, count);
                            }
                        }
                        // Grow by a quarter rather than doubling (the capacity is the memory
                        // held, and a bucket is added far less often than a sample), never
                        // past the limit.
                        if buckets.len() == buckets.capacity() {
                            let more = (buckets.len() / 4)
                                .max(8)
                                .min(limit.saturating_sub(buckets.len()).max(1));
                            buckets.reserve_exact(more);
                        }
                        buckets.insert(at, (index, count));
                    }
                }
            }
            Repr::Dense(h) => {
                if h.count_at(value).checked_add(count).is_none() {
                    self.widen();
                    return self.record(cfg, duration_ns, count);
                }
                // `record_n` grows the auto-resizing histogram; it fails only if growing is
                // impossible, and then the saturating form keeps the count.
                if h.record_n(value, count).is_err() {
                    h.saturating_record_n(value, count);
                }
            }
            Repr::Wide(h) => {
                if h.record_n(value, u64::from(count)).is_err() {
                    h.saturating_record_n(value, u64::from(count));
                }
            }
        }
        us > high
    }

    /// Switches to 64-bit counters, keeping every count.
    fn widen(&mut self) {
        let Ok(mut wide) = Histogram::<u64>::new_with_bounds(1, 2, self.layout.digits) else {
            return;
        };
        wide.auto(true);
        let mut put = |value: u64, count: u64| {
            if wide.record_n(value, count).is_err() {
                wide.saturating_record_n(value, count);
            }
        };
        match &self.repr {
            Repr::Sparse(buckets) => {
                for &(index, count) in buckets.iter().rev() {
                    put(self.layout.value_of(index), u64::from(count));
                }
            }
            Repr::Dense(h) => {
                for v in h.iter_recorded() {
                    put(
                        h.lowest_equivalent(v.value_iterated_to()),
                        u64::from(v.count_at_value()),
                    );
                }
            }
            Repr::Wide(_) => return,
        }
        self.repr = Repr::Wide(Box::new(wide));
    }

    /// Adds the counts into `dst`, values above `dst.high()` clamped to it (as [`add_clamped`]).
    fn add_to(&self, dst: &mut Histogram<u64>) {
        match &self.repr {
            Repr::Sparse(buckets) => {
                let high = dst.high();
                for &(index, count) in buckets {
                    dst.saturating_record_n(self.layout.value_of(index).min(high), u64::from(count));
                }
            }
            Repr::Dense(h) => add_clamped(dst, h.as_ref()),
            Repr::Wide(h) => add_clamped(dst, h.as_ref()),
        }
    }

    /// (counts index, count) of every bucket recorded, ascending.
    fn buckets(&self) -> Vec<(u32, u64)> {
        let dense = |values: &mut dyn Iterator<Item = (u64, u64)>| -> Vec<(u32, u64)> {
            values.map(|(v, c)| (self.layout.index_of(v), c)).collect()
        };
        match &self.repr {
            Repr::Sparse(buckets) => buckets.iter().map(|&(i, c)| (i, u64::from(c))).collect(),
            Repr::Dense(h) => dense(
                &mut h
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to(), u64::from(v.count_at_value()))),
            ),
            Repr::Wide(h) => dense(&mut h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value()))),
        }
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Sparse(buckets) => buckets.iter().map(|&(_, c)| u64::from(c)).sum(),
            Repr::Dense(h) => h.len(),
            Repr::Wide(h) => h.len(),
        }
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the counts take: the sparse form's capacity, or the dense counters.
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Sparse(buckets) => buckets.capacity() * std::mem::size_of::<(u32, u32)>(),
            Repr::Dense(h) => h.distinct_values() * std::mem::size_of::<u32>() + std::mem::size_of::<Histogram<u32>>(),
            Repr::Wide(h) => h.distinct_values() * std::mem::size_of::<u64>() + std::mem::size_of::<Histogram<u64>>(),
        }
    }

    /// True if held sparse.
    pub fn is_sparse(&self) -> bool {
        matches!(self.repr, Repr::Sparse(_))
    }

    /// V2 compressed bytes: those of an HdrHistogram with 32-bit counters (64-bit once wide)
    /// into which every value had been recorded, grown with them like the live histograms
    /// snapshots held before; [`Open::decode`] reads them back.
    pub fn encode(&self) -> Result<Vec<u8>, HistogramError> {
        match &self.repr {
            Repr::Sparse(buckets) => {
                let dense = dense_of(self.layout, buckets)
                    .ok_or_else(|| HistogramError::Encode("significant digits out of range".into()))?;
                encode(&dense)
            }
            Repr::Dense(h) => encode(h.as_ref()),
            Repr::Wide(h) => encode(h.as_ref()),
        }
    }

    /// Reads [`Open::encode`]'s bytes (or any V2 encoding) back, in the form recording the
    /// same counts would have left.
    pub fn decode(bytes: &[u8]) -> Result<Open, HistogramError> {
        let h = decode(bytes)?;
        let sigfig = h.sigfig();
        if !(1..=5).contains(&sigfig) {
            return Err(HistogramError::Decode(format!("{sigfig} significant digits")));
        }
        let layout = Layout::new(sigfig);
        let mut buckets = Vec::new();
        for v in h.iter_recorded() {
            let Ok(count) = u32::try_from(v.count_at_value()) else {
                let mut wide = h;
                wide.auto(true);
                return Ok(Open {
                    repr: Repr::Wide(Box::new(wide)),
                    layout,
                });
            };
            buckets.push((layout.index_of(v.value_iterated_to()), count));
        }
        let last = buckets.last().map_or(0, |&(i, _)| i);
        let repr = if buckets.len() > layout.sparse_limit(last) {
            Repr::Dense(Box::new(
                dense_of(layout, &buckets).ok_or_else(|| HistogramError::Decode("bounds".into()))?,
            ))
        } else {
            buckets.shrink_to_fit();
            Repr::Sparse(buckets)
        };
        Ok(Open { repr, layout })
    }
}

/// The dense live histogram of sparse counts: 32-bit counters grown (auto-resize) to the
/// largest value, exactly as recording the values one by one leaves it.
fn dense_of(layout: Layout, buckets: &[(u32, u32)]) -> Option<Histogram<u32>> {
    let mut h = Histogram::<u32>::new_with_bounds(1, 2, layout.digits).ok()?;
    h.auto(true);
    // The largest first: one resize, to the final size.
    for &(index, count) in buckets.iter().rev() {
        let value = layout.value_of(index);
        if h.record_n(value, count).is_err() {
            h.saturating_record_n(value, count);
        }
    }
    Some(h)
}

/// V2 compressed (deflate) bytes.
///
/// This is HdrHistogram's standard compressed V2 encoding (what Java's `encodeIntoCompressedByteBuffer`
/// and Python `hdrh`'s `encode()` before base64 produce).
pub fn encode<T: Counter>(h: &Histogram<T>) -> Result<Vec<u8>, HistogramError> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .map_err(|e| HistogramError::Encode(e.to_string()))?;
    // Accumulators hold these bytes for a day or a month: no spare capacity.
    out.shrink_to_fit();
    Ok(out)
}

/// Reads V2 compressed (also accept uncompressed V2) bytes.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, HistogramError> {
    check_header(bytes)?;
    let mut reader = bytes;
    Deserializer::new()
        .deserialize::<u64, _>(&mut reader)
        .map_err(|e| HistogramError::Decode(e.to_string()))
}

/// Cheap sanity checks before handing bytes to the deserializer, which otherwise allocates whatever
/// payload length an uncompressed header claims (up to 4 GiB) before noticing the input is short.
fn check_header(bytes: &[u8]) -> Result<(), HistogramError> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(b)).ok()
    };
    let (Some(cookie), Some(len)) = (word(0), word(4)) else {
        return Err(HistogramError::Decode(format!(
            "{} bytes is too short for a V2 header",
            bytes.len()
        )));
    };
    let available = match u32::try_from(cookie) {
        Ok(V2_COOKIE) => bytes.len().saturating_sub(V2_HEADER_LEN),
        Ok(V2_COMPRESSED_COOKIE) => bytes.len() - 8,
        _ => return Err(HistogramError::Decode(format!("unknown cookie {cookie:#010x}"))),
    };
    if len > available {
        return Err(HistogramError::Decode(format!(
            "header claims {len} payload bytes but only {available} are present"
        )));
    }
    Ok(())
}

/// V2 compressed bytes as standard base64 text (the form Python `hdrh`'s `encode()` returns).
pub fn encode_base64(h: &Histogram<u64>) -> Result<String, HistogramError> {
    Ok(to_text(&encode(h)?))
}

/// Encoded histogram bytes as text (standard base64), the form records and JSON carry.
pub fn to_text(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Encoded histogram bytes from their text form; surrounding whitespace is ignored.
pub fn from_text(text: &str) -> Result<Vec<u8>, HistogramError> {
    BASE64
        .decode(text.trim())
        .map_err(|e| HistogramError::Decode(format!("invalid base64: {e}")))
}

/// Reads standard base64 text of V2 compressed (or uncompressed) bytes; surrounding whitespace is ignored.
pub fn decode_base64(text: &str) -> Result<Histogram<u64>, HistogramError> {
    decode(&from_text(text)?)
}

/// Adds `src` into `dst`, clamping values above `dst.high()` to it (never an error).
///
/// `Histogram::add` refuses (without auto-resize) any source whose max exceeds what `dst` can hold, and
/// would silently keep values between `dst.high()` and the top of `dst`'s last bucket; both cases go
/// through the per-value path here so a merged histogram obeys the same clamp as [`record_ns`].
fn add_clamped<T: Counter + 'static>(dst: &mut Histogram<u64>, src: &Histogram<T>) {
    if src.is_empty() {
        return;
    }
    let high = dst.high();
    // Same counter type and range: the library's bucket-wise add.
    if let Some(same) = (src as &dyn std::any::Any).downcast_ref::<Histogram<u64>>() {
        if src.max() <= dst.highest_equivalent(high) && dst.add(same).is_ok() {
            return;
        }
    }
    for v in src.iter_recorded() {
        let value = src.lowest_equivalent(v.value_iterated_to()).min(high);
        dst.saturating_record_n(value, v.count_at_value().as_u64());
    }
}

/// Adds `h` into the compressed accumulator `acc` (empty acc = start from nothing): decode, add, re-encode.
/// The result has the bounds of cfg.
///
/// On error `acc` is left unchanged. Values of `acc` or `h` above cfg's highest trackable are clamped.
pub fn merge_into<T: Counter + 'static>(
    cfg: &HistogramConfig,
    acc: &mut Vec<u8>,
    h: &Histogram<T>,
) -> Result<(), HistogramError> {
    let mut merged = cfg.new_histogram()?;
    if !acc.is_empty() {
        add_clamped(&mut merged, &decode(acc)?);
    }
    add_clamped(&mut merged, h);
    *acc = encode(&merged)?;
    Ok(())
}

/// Merges several encoded histograms (and optionally live ones) into one live histogram.
///
/// The result has the bounds of cfg; values above its highest trackable are clamped. An empty byte slice
/// counts as an empty histogram (like an empty accumulator in [`merge_into`]).
pub fn merge_all<'a, T: Counter + 'static>(
    cfg: &HistogramConfig,
    encoded: impl IntoIterator<Item = &'a [u8]>,
    live: impl IntoIterator<Item = &'a Histogram<T>>,
) -> Result<Histogram<u64>, HistogramError> {
    let mut merged = cfg.new_histogram()?;
    for bytes in encoded {
        if !bytes.is_empty() {
            add_clamped(&mut merged, &decode(bytes)?);
        }
    }
    for h in live {
        add_clamped(&mut merged, h);
    }
    Ok(merged)
}

/// [`merge_into`] for an open window's histogram: `open` added into the compressed `acc`.
/// Bucket by bucket (`sparse.rs`) when `acc` is this engine's own form, with the same bytes
/// as the dense merge; through dense histograms otherwise.
pub fn merge_open_into(cfg: &HistogramConfig, acc: &mut Vec<u8>, open: &Open) -> Result<(), HistogramError> {
    if let Some(merged) = merge_sparse(cfg, acc, || open.buckets())? {
        *acc = merged;
        return Ok(());
    }
    let mut merged = cfg.new_histogram()?;
    if !acc.is_empty() {
        add_clamped(&mut merged, &decode(acc)?);
    }
    open.add_to(&mut merged);
    *acc = encode(&merged)?;
    Ok(())
}

/// [`merge_into`] for a compressed histogram (a closed day into its month), bucket by bucket
/// as [`merge_open_into`] when both are this engine's form.
pub fn merge_encoded_into(cfg: &HistogramConfig, acc: &mut Vec<u8>, bytes: &[u8]) -> Result<(), HistogramError> {
    let more = match sparse::read(bytes)? {
        Some(c) if c.digits == cfg.significant_digits => c.buckets,
        _ => return merge_into(cfg, acc, &decode(bytes)?),
    };
    if let Some(merged) = merge_sparse(cfg, acc, || more.clone())? {
        *acc = merged;
        return Ok(());
    }
    merge_into(cfg, acc, &decode(bytes)?)
}

/// `acc` (empty: nothing yet) plus `more`, encoded with cfg's bounds; `None` when `acc` is
/// not in the form the bucket-wise merge reads (another header: the dense path merges it).
fn merge_sparse(
    cfg: &HistogramConfig,
    acc: &[u8],
    more: impl FnOnce() -> Vec<(u32, u64)>,
) -> Result<Option<Vec<u8>>, HistogramError> {
    cfg.validate().map_err(HistogramError::Config)?;
    let high = cfg.highest_trackable_us();
    let held = if acc.is_empty() {
        Vec::new()
    } else {
        match sparse::read(acc)? {
            Some(c) if c.digits == cfg.significant_digits => c.buckets,
            _ => return Ok(None),
        }
    };
    let cap = Layout::new(cfg.significant_digits).index_of(high);
    let sum = sparse::add(&held, more(), cap);
    sparse::write(cfg.significant_digits, high, &sum).map(Some)
}

/// [`merge_all`] for open windows' histograms: the encoded ones and `open` in one histogram
/// with the bounds of cfg.
pub fn merge_all_open<'a>(
    cfg: &HistogramConfig,
    encoded: impl IntoIterator<Item = &'a [u8]>,
    open: impl IntoIterator<Item = &'a Open>,
) -> Result<Histogram<u64>, HistogramError> {
    let mut merged = merge_all::<u64>(cfg, encoded, [])?;
    for h in open {
        h.add_to(&mut merged);
    }
    Ok(merged)
}

/// Summary of a histogram in ns, for records and reports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub struct Summary {
    /// Number of recorded requests.
    pub count: u64,
    /// Mean latency in ns (each value taken at the middle of its bucket).
    pub mean_ns: f64,
    /// Median latency in ns (highest value equivalent to the nearest-rank sample).
    pub p50_ns: i64,
    /// 95th percentile latency in ns (highest value equivalent to the nearest-rank sample).
    pub p95_ns: i64,
    /// 99th percentile latency in ns (highest value equivalent to the nearest-rank sample).
    pub p99_ns: i64,
    /// Largest latency in ns (highest value equivalent to the largest sample).
    pub max_ns: i64,
}

/// Summarizes `h` (values in µs) in ns; an empty histogram gives all zeros.
pub fn summarize(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    Summary {
        count: h.len(),
        mean_ns: mean_ns(h),
        p50_ns: percentile_ns(h, 50.0),
        p95_ns: percentile_ns(h, 95.0),
        p99_ns: percentile_ns(h, 99.0),
        max_ns: us_to_ns(h.max()),
    }
}

/// Value at a percentile (0..=100) in ns.
///
/// Nearest rank: the highest value equivalent to the sample of rank ⌈p·n/100⌉ (like Java's
/// `getValueAtPercentile`); percentile 0 gives the lowest value equivalent to the minimum. Out-of-range
/// percentiles are clamped to 0..=100 and NaN counts as 0; an empty histogram gives 0.
pub fn percentile_ns(h: &Histogram<u64>, percentile: f64) -> i64 {
    let n = h.len();
    if n == 0 {
        return 0;
    }
    let p = if percentile.is_nan() {
        0.0
    } else {
        percentile.clamp(0.0, 100.0)
    };
    if p == 0.0 {
        return us_to_ns(h.value_at_quantile(0.0));
    }
    // `value_at_quantile(p / 100)` computes ceil((p / 100) · n), which floating point error pushes one rank
    // too far whenever p·n/100 is a whole number but p/100 is not exact (e.g. p = 7, n = 100 gives rank 8).
    // Compute the rank as p·n/100 (exact for integer p, n < 2^53) and ask for the middle of that rank.
    let n_f = n as f64;
    let rank = (p * n_f / 100.0).ceil().clamp(1.0, n_f);
    us_to_ns(h.value_at_quantile((rank - 0.5) / n_f))
}

/// Mean in ns.
///
/// Each recorded value counts at the middle of its bucket (HdrHistogram's usual mean); empty gives 0.
pub fn mean_ns(h: &Histogram<u64>) -> f64 {
    h.mean() * NS_PER_US as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::V2Serializer;
    use proptest::prelude::*;
    use std::process::Command;

    const HOUR_US: u64 = 3_600_000_000;

    fn cfg() -> HistogramConfig {
        HistogramConfig::default()
    }

    fn hist() -> Histogram<u64> {
        cfg().new_histogram().unwrap()
    }

    /// Deterministic pseudo-random latencies in ns (xorshift), log-spread from ~1 µs to ~60 s.
    fn latencies(seed: u64, n: usize) -> Vec<i64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let magnitude = (x % 8) as u32; // 10^3 ns .. 10^10 ns
                let mantissa = (x >> 8) % 10_000;
                (mantissa * 10u64.pow(magnitude) / 10 + 1) as i64
            })
            .collect()
    }

    /// The known histogram used by the interop tests: 1..=1000 µs once each plus 5000 µs × 10.
    fn known() -> Histogram<u64> {
        let mut h = hist();
        for us in 1..=1000i64 {
            assert!(!record_ns(&mut h, us * 1000, 1));
        }
        assert!(!record_ns(&mut h, 5_000_000, 10));
        h
    }

    fn assert_same(a: &Histogram<u64>, b: &Histogram<u64>) {
        assert_eq!(a.len(), b.len(), "count");
        assert_eq!(a.max(), b.max(), "max");
        assert_eq!(mean_ns(a), mean_ns(b), "mean");
        for p in 0..=100 {
            assert_eq!(percentile_ns(a, p as f64), percentile_ns(b, p as f64), "p{p}");
        }
        let av: Vec<_> = a
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let bv: Vec<_> = b
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(av, bv, "recorded buckets");
        assert!(a == b, "histograms differ");
    }

    #[test]
    fn default_config_and_bounds() {
        let c = HistogramConfig::default();
        assert_eq!(c.significant_digits, 3);
        assert_eq!(c.highest_trackable, Duration::from_secs(3600));
        let h = c.new_histogram().unwrap();
        assert_eq!((h.low(), h.high(), h.sigfig()), (1, HOUR_US, 3));
        assert!(h.is_empty());
    }

    #[test]
    fn config_from_toml() {
        #[derive(serde::Deserialize)]
        struct Sla {
            histogram: HistogramConfig,
        }
        #[derive(serde::Deserialize)]
        struct Root {
            sla: Sla,
        }
        let r: Root = toml::from_str("[sla.histogram]\nsignificant_digits = 2\nhighest_trackable = \"30s\"\n").unwrap();
        assert_eq!(r.sla.histogram.significant_digits, 2);
        assert_eq!(r.sla.histogram.highest_trackable, Duration::from_secs(30));

        let r: Root = toml::from_str("[sla.histogram]\nhighest_trackable = \"2h 30m\"\n").unwrap();
        assert_eq!(r.sla.histogram.significant_digits, 3, "missing field takes default");
        assert_eq!(r.sla.histogram.highest_trackable, Duration::from_secs(9000));

        let r: Root = toml::from_str("[sla.histogram]\n").unwrap();
        assert_eq!(r.sla.histogram, HistogramConfig::default());

        let err = toml::from_str::<Root>("[sla.histogram]\nsignificant_digit = 2\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("significant_digit"), "{err}");

        let text = toml::to_string(&HistogramConfig::default()).unwrap();
        assert!(text.contains("highest_trackable = \"1h\""), "{text}");
        assert_eq!(
            toml::from_str::<HistogramConfig>(&text).unwrap(),
            HistogramConfig::default()
        );
    }

    #[test]
    fn invalid_config_names_field() {
        for digits in [0u8, 6, 255] {
            let c = HistogramConfig {
                significant_digits: digits,
                ..cfg()
            };
            let msg = c.validate().unwrap_err();
            assert!(msg.contains("significant_digits"), "{msg}");
            let err = c.new_histogram().unwrap_err();
            assert!(matches!(err, HistogramError::Config(_)), "{err:?}");
            assert!(err.to_string().contains("significant_digits"), "{err}");
        }
        for high in [Duration::ZERO, Duration::from_nanos(1999), Duration::from_micros(1)] {
            let c = HistogramConfig {
                highest_trackable: high,
                ..cfg()
            };
            let err = c.new_histogram().unwrap_err();
            assert!(matches!(err, HistogramError::Config(_)), "{err:?}");
            assert!(err.to_string().contains("highest_trackable"), "{err}");
        }
        let huge = HistogramConfig {
            highest_trackable: Duration::MAX,
            ..cfg()
        };
        assert!(huge.validate().unwrap_err().contains("highest_trackable"));
        for digits in 1..=5 {
            let c = HistogramConfig {
                significant_digits: digits,
                highest_trackable: Duration::from_micros(2),
            };
            c.new_histogram().unwrap();
        }
    }

    #[test]
    fn ns_to_us_rounds_up() {
        let cases = [
            (0i64, 0u64),
            (1, 1),
            (999, 1),
            (1000, 1),
            (1001, 2),
            (2000, 2),
            (1_000_000, 1000),
        ];
        for (ns, us) in cases {
            let mut h = hist();
            assert!(!record_ns(&mut h, ns, 1));
            assert_eq!(h.len(), 1);
            assert_eq!(h.count_at(us), 1, "{ns} ns must count as {us} µs");
            assert_eq!(percentile_ns(&h, 100.0), (us * 1000) as i64, "{ns} ns");
        }
        let mut h = hist();
        assert!(!record_ns(&mut h, -5, 3), "negative is recorded as 0, not clamped");
        assert_eq!(h.count_at(0), 3);
        assert!(!record_ns(&mut h, 7_000, 0), "count 0 records nothing");
        assert_eq!(h.len(), 3);
        assert_eq!(h.max(), 0);
    }

    #[test]
    fn clamps_above_highest_trackable() {
        let c = HistogramConfig {
            highest_trackable: Duration::from_secs(10),
            ..cfg()
        };
        let mut h = c.new_histogram().unwrap();
        assert!(
            !record_ns(&mut h, 10_000_000_000, 1),
            "exactly the highest is not clamped"
        );
        assert!(
            record_ns(&mut h, 10_000_000_001, 2),
            "1 ns above rounds to 1 µs above: clamped"
        );
        assert!(record_ns(&mut h, i64::MAX, 1));
        assert_eq!(h.len(), 4);
        assert_eq!(h.count_at(10_000_000), 4, "all clamped to the highest trackable value");
        let s = summarize(&h);
        assert_eq!(s.max_ns, h.highest_equivalent(10_000_000) as i64 * 1000);
        assert!(s.max_ns >= 10_000_000_000 && s.max_ns <= 10_010_000_000, "{s:?}");

        // Merging into a smaller config clamps too, instead of failing.
        let mut big = hist();
        record_ns(&mut big, 3_000_000_000_000, 5); // 50 min
        record_ns(&mut big, 1_000_000, 1);
        let mut acc = Vec::new();
        merge_into(&c, &mut acc, &big).unwrap();
        let merged = decode(&acc).unwrap();
        assert_eq!(merged.high(), 10_000_000);
        assert_eq!(merged.len(), 6);
        assert_eq!(merged.count_at(10_000_000), 5);
        assert_eq!(merged.count_at(1000), 1);

        // 12 s fits in the last bucket of a 10 s histogram (which reaches ~16.7 s), so a plain
        // `Histogram::add` would keep it unclamped; the merge clamps it like `record_ns` does.
        let mut over = hist();
        record_ns(&mut over, 12_000_000_000, 2);
        let merged = merge_all(&c, [], [&over]).unwrap();
        assert_eq!(merged.count_at(10_000_000), 2);
        assert_eq!(merged.max(), merged.highest_equivalent(10_000_000));
        let mut acc = Vec::new();
        merge_into(&c, &mut acc, &over).unwrap();
        assert_eq!(decode(&acc).unwrap().count_at(10_000_000), 2);
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut h = hist();
        for ns in latencies(7, 5000) {
            record_ns(&mut h, ns, 1);
        }
        record_ns(&mut h, 0, 4);
        record_ns(&mut h, i64::MAX, 2);
        let bytes = encode(&h).unwrap();
        assert_eq!(&bytes[..4], &[0x1c, 0x84, 0x93, 0x14], "compressed V2 cookie");
        let back = decode(&bytes).unwrap();
        assert_eq!(
            (back.low(), back.high(), back.sigfig()),
            (h.low(), h.high(), h.sigfig())
        );
        assert_same(&h, &back);
        assert_eq!(summarize(&h), summarize(&back));

        // Uncompressed V2 is accepted as well.
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&h, &mut plain).unwrap();
        assert_eq!(&plain[..4], &[0x1c, 0x84, 0x93, 0x13]);
        assert_same(&h, &decode(&plain).unwrap());

        // Base64 text form.
        let text = encode_base64(&h).unwrap();
        assert_same(&h, &decode_base64(&format!(" {text}\n")).unwrap());

        // Empty histogram.
        let empty = decode(&encode(&hist()).unwrap()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(summarize(&empty), Summary::default());
    }

    #[test]
    fn decode_garbage_is_error() {
        let good = encode(&known()).unwrap();
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&known(), &mut plain).unwrap();
        let mut huge_len = plain.clone();
        huge_len[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut bad_inner = good.clone();
        let last = bad_inner.len() - 1;
        bad_inner[last] ^= 0xff; // breaks the zlib checksum
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x1c],
            b"hello world, this is not a histogram".to_vec(),
            vec![0u8; 64],
            vec![0xffu8; 64],
            good[..good.len() / 2].to_vec(),
            good[..8].to_vec(),
            bad_inner,
            plain[..plain.len() - 1].to_vec(),
            huge_len,
        ];
        for bytes in &inputs {
            let err = decode(bytes).unwrap_err();
            assert!(matches!(err, HistogramError::Decode(_)), "{err:?}");
        }
        assert!(matches!(decode_base64("***"), Err(HistogramError::Decode(_))));
        let mut acc = b"garbage!".to_vec();
        assert!(merge_into(&cfg(), &mut acc, &known()).is_err());
        assert_eq!(acc, b"garbage!", "acc unchanged on error");
        assert!(merge_all::<u64>(&cfg(), [&b"garbage!"[..]], []).is_err());
    }

    #[test]
    fn merge_into_sixty_minutes_equals_one_hour() {
        let c = cfg();
        let mut whole = c.new_histogram().unwrap();
        let mut acc = Vec::new();
        let mut minutes = Vec::new();
        for minute in 0..60u64 {
            let mut m = c.new_histogram().unwrap();
            for ns in latencies(minute + 1, 200 + (minute as usize * 37) % 300) {
                record_ns(&mut m, ns, 1);
                record_ns(&mut whole, ns, 1);
            }
            if minute == 13 {
                assert!(record_ns(&mut m, 7_200_000_000_000, 3)); // 2 h: clamped
                record_ns(&mut whole, 7_200_000_000_000, 3);
            }
            merge_into(&c, &mut acc, &m).unwrap();
            minutes.push(encode(&m).unwrap());
        }
        let hour = decode(&acc).unwrap();
        assert!(whole.len() > 10_000);
        assert_same(&whole, &hour);
        assert_eq!(summarize(&whole), summarize(&hour));

        let all = merge_all::<u64>(&c, minutes.iter().map(Vec::as_slice), []).unwrap();
        assert_same(&whole, &all);

        // Hours into a day: compressed aggregates merge again.
        let mut day = Vec::new();
        for _ in 0..24 {
            merge_into(&c, &mut day, &hour).unwrap();
        }
        let day = decode(&day).unwrap();
        assert_eq!(day.len(), whole.len() * 24);
        assert_eq!(percentile_ns(&day, 99.0), percentile_ns(&whole, 99.0));

        // Mixed encoded + live.
        let live = [decode(&minutes[59]).unwrap()];
        let mixed = merge_all(&c, minutes[..59].iter().map(Vec::as_slice), live.iter()).unwrap();
        assert_same(&whole, &mixed);
    }

    #[test]
    fn percentile_rank_is_exact_where_value_at_quantile_is_not() {
        // 100 distinct values: p7 is the 7th. hdrhistogram's value_at_quantile(0.07) computes
        // ceil(0.07 * 100) = ceil(7.000000000000001) = 8 and returns the 8th.
        let mut h = hist();
        for us in 1..=100i64 {
            record_ns(&mut h, us * 1000, 1);
        }
        assert_eq!(
            h.value_at_quantile(0.07),
            8,
            "crate quirk (if this fails, the workaround can go)"
        );
        for p in 1..=100 {
            assert_eq!(percentile_ns(&h, p as f64), p * 1000, "p{p}");
        }
        assert_eq!(percentile_ns(&h, 0.0), 1000);
        assert_eq!(percentile_ns(&h, 250.0), 100_000);
        assert_eq!(percentile_ns(&h, -1.0), 1000);
        assert_eq!(percentile_ns(&h, 99.5), 100_000);
        assert_eq!(percentile_ns(&h, 0.5), 1000);
        let s = summarize(&h);
        assert_eq!(
            (s.count, s.p50_ns, s.p95_ns, s.p99_ns, s.max_ns),
            (100, 50_000, 95_000, 99_000, 100_000)
        );
        assert!((s.mean_ns - 50_500.0).abs() < 1e-6, "{s:?}");
        assert_eq!(percentile_ns(&hist(), 50.0), 0);
        assert_eq!(mean_ns(&hist()), 0.0);
    }

    /// Exact nearest-rank percentile of sorted µs samples.
    fn exact_percentile(sorted: &[u64], p: f64) -> u64 {
        let n = sorted.len() as f64;
        let rank = (p * n / 100.0).ceil().clamp(1.0, n) as usize;
        sorted[rank - 1]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn percentiles_match_exact_within_precision(samples in prop::collection::vec(1u64..=60_000_000, 1..2000)) {
            let mut h = hist();
            for &us in &samples {
                prop_assert!(!record_ns(&mut h, (us * 1000) as i64, 1));
            }
            let mut sorted = samples.clone();
            sorted.sort_unstable();
            let mut ps: Vec<f64> = (1..=100).map(f64::from).collect();
            ps.extend([0.1, 50.5, 99.9, 99.99]);
            for p in ps {
                let exact = exact_percentile(&sorted, p) as f64;
                let got = percentile_ns(&h, p) as f64 / 1000.0;
                prop_assert!((got - exact).abs() <= exact * 0.001 + 1.0, "p{p}: hist {got} µs vs exact {exact} µs");
                prop_assert!(got >= exact, "highest-equivalent is never below the sample: p{p} {got} < {exact}");
            }
            let exact_mean = samples.iter().map(|&v| v as f64).sum::<f64>() / samples.len() as f64;
            let mean = mean_ns(&h) / 1000.0;
            prop_assert!((mean - exact_mean).abs() <= exact_mean * 0.001 + 1.0, "mean {mean} vs {exact_mean}");
            let s = summarize(&h);
            prop_assert_eq!(s.count, samples.len() as u64);
            prop_assert!((s.max_ns as f64 / 1000.0 - sorted[sorted.len() - 1] as f64).abs() <= sorted[sorted.len() - 1] as f64 * 0.001 + 1.0);
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let _ = decode(&bytes);
            // Corrupt a valid uncompressed encoding, which reaches deeper than random bytes.
            let mut plain = Vec::new();
            V2Serializer::new().serialize(&known(), &mut plain).unwrap();
            for (i, x) in &flips {
                let at = i.index(plain.len());
                plain[at] ^= x | 1;
            }
            if let Ok(h) = decode(&plain) {
                let _ = summarize(&h);
                let _ = merge_all::<u64>(&cfg(), [plain.as_slice()], []);
            }
        }
    }

    proptest! {
        // Each case encodes/decodes up to ~30 one-hour histograms; debug-build deflate makes that the slow part.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn merged_bins_equal_single_recording(
            samples in prop::collection::vec((0i64..=4_000_000_000_000, 0usize..12, 1u64..4), 0..600),
            bins in 1usize..12,
        ) {
            let c = cfg();
            let mut whole = c.new_histogram().unwrap();
            let mut per_bin: Vec<Histogram<u64>> = (0..bins).map(|_| c.new_histogram().unwrap()).collect();
            for &(ns, bin, count) in &samples {
                let a = record_ns(&mut whole, ns, count);
                let b = record_ns(&mut per_bin[bin % bins], ns, count);
                prop_assert_eq!(a, b);
            }
            let mut acc = Vec::new();
            for h in &per_bin {
                merge_into(&c, &mut acc, h).unwrap();
            }
            let merged = decode(&acc).unwrap();
            assert_same(&whole, &merged);
            let encoded: Vec<Vec<u8>> = per_bin.iter().map(|h| encode(h).unwrap()).collect();
            assert_same(&whole, &merge_all::<u64>(&c, encoded.iter().map(Vec::as_slice), []).unwrap());
            assert_same(&whole, &merge_all(&c, [], per_bin.iter()).unwrap());
            prop_assert_eq!(summarize(&whole), summarize(&merged));
        }
    }

    // ---- cross-library interop with Python's HdrHistogram (PyPI package `hdrhistogram`, module `hdrh`) ----

    const PIP_HINT: &str = "the interop tests need python3 with the `hdrh` module: \
        run `python3 -m pip install hdrhistogram==0.10.8` (the PyPI package is named `hdrhistogram`; \
        it provides the `hdrh` module — `pip install hdrh` finds nothing)";

    /// Runs `python3 -c script args…` and returns stdout; panics loudly if python3 or `hdrh` is missing.
    fn python(script: &str, args: &[&str]) -> String {
        let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
        let probe = Command::new(&py)
            .args(["-c", "import hdrh.histogram"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{py}` ({e}); {PIP_HINT}"));
        assert!(
            probe.status.success(),
            "`{py} -c 'import hdrh.histogram'` failed: {}\n{PIP_HINT}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let out = Command::new(&py).arg("-c").arg(script).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "python failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn numbers(line: &str) -> Vec<f64> {
        line.split_whitespace().map(|w| w.parse().unwrap()).collect()
    }

    #[test]
    fn interop_python_decodes_rust_encoding() {
        let h = known();
        let b64 = encode_base64(&h).unwrap();
        let script = "import sys\n\
            from hdrh.histogram import HdrHistogram\n\
            h = HdrHistogram.decode(sys.argv[1])\n\
            print(h.get_total_count(), h.get_value_at_percentile(50), h.get_value_at_percentile(99), \
            h.get_max_value(), repr(h.get_mean_value()))\n";
        let out = python(script, &[&b64]);
        let py = numbers(&out);
        assert_eq!(py.len(), 5, "python printed: {out}");
        let ours = [
            h.len() as f64,
            h.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.99) as f64,
            h.max() as f64,
        ];
        assert_eq!(
            &py[..4],
            &ours[..],
            "python (count, p50, p99, max) vs rust; python printed: {out}"
        );
        assert_eq!(&py[..4], &[1010.0, 505.0, 1000.0, 5003.0], "known values");
        assert!(
            (py[4] - h.mean()).abs() < 1e-9 * h.mean(),
            "mean: python {} vs rust {}",
            py[4],
            h.mean()
        );
        let s = summarize(&h);
        assert_eq!(
            (s.count, s.p50_ns, s.p99_ns, s.max_ns),
            (1010, 505_000, 1_000_000, 5_003_000)
        );
    }

    #[test]
    fn interop_rust_decodes_python_encoding() {
        let script = "from hdrh.histogram import HdrHistogram\n\
            h = HdrHistogram(1, 3600000000, 3)\n\
            for v in range(1, 1001):\n    h.record_value(v)\n\
            h.record_value(5000, 10)\n\
            h.record_value(2500000, 3)\n\
            h.record_value(3600000000)\n\
            print(h.encode().decode())\n\
            print(h.get_total_count(), h.get_value_at_percentile(50), h.get_value_at_percentile(99), \
            h.get_value_at_percentile(99.9), h.get_max_value())\n";
        let out = python(script, &[]);
        let mut lines = out.lines();
        let b64 = lines.next().unwrap();
        let py = numbers(lines.next().unwrap());
        let h = decode_base64(b64).unwrap();
        assert_eq!((h.low(), h.high(), h.sigfig()), (1, HOUR_US, 3));
        let ours = [
            h.len() as f64,
            h.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.99) as f64,
            h.value_at_quantile(0.999) as f64,
            h.max() as f64,
        ];
        assert_eq!(py, ours, "python (count, p50, p99, p99.9, max) vs rust");
        assert_eq!(h.len(), 1014);
        assert_eq!(percentile_ns(&h, 50.0), 507_000);
        assert_eq!(h.count_at(2_500_000), 3);
        assert_eq!(h.count_at(HOUR_US), 1);

        // Python's blob works as a compressed accumulator too.
        let mut acc = BASE64.decode(b64).unwrap();
        merge_into(&cfg(), &mut acc, &known()).unwrap();
        let merged = decode(&acc).unwrap();
        assert_eq!(merged.len(), 1014 + 1010);
        assert_eq!(merged.count_at(5000), 20);
        assert_eq!(merged.count_at(HOUR_US), 1);
    }
}
#[cfg(test)]
mod open_tests {
    use super::*;
    use proptest::prelude::*;

    /// What the open hour held before: a live HdrHistogram with 32-bit counters, grown with
    /// the values (auto-resize), each value clamped at the configured maximum first.
    fn reference(cfg: &HistogramConfig) -> Histogram<u32> {
        let mut h = Histogram::<u32>::new_with_bounds(1, 2, cfg.significant_digits).unwrap();
        h.auto(true);
        h
    }

    fn record_reference(cfg: &HistogramConfig, h: &mut Histogram<u32>, ns: i64) {
        h.record(ns_to_us(ns).min(cfg.highest_trackable_us())).unwrap();
    }

    #[test]
    fn layout_is_hdrhistograms_index() {
        for digits in 1..=5u8 {
            let layout = Layout::new(digits);
            let h = Histogram::<u8>::new_with_bounds(1, 2, digits).unwrap();
            let mut previous = 0;
            let mut values: Vec<u64> = (0..5000).collect();
            for shift in 0..62 {
                let base = 1u64 << shift;
                values.extend([base - 1, base, base + 1, base + base / 3, base * 3 / 2]);
            }
            values.sort_unstable();
            for v in values {
                let index = layout.index_of(v);
                assert_eq!(
                    layout.value_of(index),
                    h.lowest_equivalent(v),
                    "{digits} digits, value {v}"
                );
                assert!(index >= previous, "monotone at {v}");
                previous = index;
            }
        }
        // The counts array of a 1-hour range at 3 digits: 23 buckets of 1 024 plus the lower half.
        let layout = Layout::new(3);
        let hour = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        assert_eq!(layout.dense_len(layout.index_of(3_600_000_000)), hour.distinct_values());
        assert_eq!(hour.distinct_values(), 23 * 1024);
    }

    #[test]
    fn sixty_samples_are_held_sparse_in_a_few_hundred_bytes() {
        let cfg = HistogramConfig::default();
        let mut open = cfg.new_open().unwrap();
        let mut dense = reference(&cfg);
        for i in 0..60i64 {
            let ns = 2_000_000 + (i * 7_919_000) % 900_000_000;
            assert!(!open.record(&cfg, ns, 1));
            record_reference(&cfg, &mut dense, ns);
        }
        assert!(open.is_sparse());
        assert_eq!(open.len(), 60);
        // 60 buckets at 8 bytes, capacity grown by a quarter: under 100 buckets' worth.
        assert!(open.heap_bytes() <= 100 * 8, "{} bytes", open.heap_bytes());
        // The dense counters it replaces: the largest value, 469.2 ms, is in bucket 8
        // ([2^18, 2^19) µs), so (8 + 2) · 1 024 counters of 4 bytes.
        assert_eq!(dense.distinct_values(), 10 * 1024);
        assert_eq!(open.encode().unwrap(), encode(&dense).unwrap(), "the same V2 bytes");
    }

    #[test]
    fn turns_dense_when_sparse_would_be_larger_and_never_holds_more_than_dense() {
        let cfg = HistogramConfig::default();
        let mut open = cfg.new_open().unwrap();
        let mut dense = reference(&cfg);
        // 1..=3000 µs: every bucket of the first 3 000 values distinct.
        for us in 1..=3000i64 {
            open.record(&cfg, us * 1000, 1);
            record_reference(&cfg, &mut dense, us * 1000);
            let dense_bytes = dense.distinct_values() * 4 + std::mem::size_of::<Histogram<u32>>();
            if open.is_sparse() {
                // Sparse: at most an eighth of the counters' count, 8 bytes each.
                assert!(
                    open.heap_bytes() <= dense.distinct_values(),
                    "{us}: {}",
                    open.heap_bytes()
                );
            }
            assert!(
                open.heap_bytes() <= dense_bytes,
                "{us}: {} > {dense_bytes}",
                open.heap_bytes()
            );
        }
        assert!(
            !open.is_sparse(),
            "3 000 buckets, past an eighth of 3 072 counters: dense"
        );
        assert_eq!(open.encode().unwrap(), encode(&dense).unwrap());
        let back = Open::decode(&open.encode().unwrap()).unwrap();
        assert!(!back.is_sparse());
        assert_eq!(back.encode().unwrap(), encode(&dense).unwrap());
    }

    #[test]
    fn a_bucket_passing_u32_max_widens_instead_of_saturating() {
        let cfg = HistogramConfig::default();
        for dense_first in [false, true] {
            let mut open = cfg.new_open().unwrap();
            if dense_first {
                for us in 1..=3000i64 {
                    open.record(&cfg, us * 1000, 1);
                }
                assert!(!open.is_sparse());
            }
            open.record(&cfg, 5_000_000, u32::MAX - 1);
            open.record(&cfg, 5_000_000, 3);
            let extra = if dense_first { 3000 } else { 0 };
            assert_eq!(open.len(), u64::from(u32::MAX) + 2 + extra);
            let back = Open::decode(&open.encode().unwrap()).unwrap();
            assert_eq!(back.len(), open.len(), "kept through a snapshot");
            let merged = merge_all_open(&cfg, [], [&back]).unwrap();
            assert_eq!(merged.count_at(5000), u64::from(u32::MAX) + 2);
        }
    }

    #[test]
    fn clamps_at_the_configured_maximum_and_reads_old_live_snapshots() {
        let cfg = HistogramConfig::default();
        let mut open = cfg.new_open().unwrap();
        assert!(!open.record(&cfg, 900_000_000, 1));
        assert!(
            open.record(&cfg, 2 * 3_600_000_000_000, 1),
            "over 1 h: clamped, reported"
        );
        let merged = merge_all_open(&cfg, [], [&open]).unwrap();
        assert_eq!(merged.max(), merged.highest_equivalent(cfg.highest_trackable_us()));
        assert_eq!(percentile_ns(&merged, 50.0) / 1_000_000, 900);
        // A snapshot of the former live histogram (32-bit, auto-resized) reads as sparse.
        let mut old = reference(&cfg);
        record_reference(&cfg, &mut old, 900_000_000);
        record_reference(&cfg, &mut old, 2 * 3_600_000_000_000);
        let back = Open::decode(&encode(&old).unwrap()).unwrap();
        assert!(back.is_sparse());
        assert_eq!(back.encode().unwrap(), encode(&old).unwrap());
        assert_eq!(back.encode().unwrap(), open.encode().unwrap());
        assert!(matches!(Open::decode(b"garbage!"), Err(HistogramError::Decode(_))));
    }

    /// An accumulator written with a wider range (another configuration) still merges as
    /// the dense path does: its values above the configured range clamped to its top.
    #[test]
    fn sparse_merge_clamps_a_wider_accumulator_like_the_dense_one() {
        let cfg = HistogramConfig::default();
        let wide = HistogramConfig {
            highest_trackable: Duration::from_secs(7200),
            ..cfg.clone()
        };
        let mut old = wide.new_histogram().unwrap();
        record_ns(&mut old, 5_000_000_000_000, 3);
        record_ns(&mut old, 2_000_000, 5);
        let mut open = cfg.new_open().unwrap();
        open.record(&cfg, 4_000_000, 2);
        let mut acc = encode(&old).unwrap();
        merge_open_into(&cfg, &mut acc, &open).unwrap();
        let mut dense = cfg.new_histogram().unwrap();
        add_clamped(&mut dense, &old);
        open.add_to(&mut dense);
        assert_eq!(acc, encode(&dense).unwrap());
        assert_eq!(decode(&acc).unwrap().count_at(cfg.highest_trackable_us()), 3);
        // Nothing recorded: the encoding of an empty histogram.
        let mut empty = Vec::new();
        merge_open_into(&cfg, &mut empty, &cfg.new_open().unwrap()).unwrap();
        assert_eq!(empty, encode(&cfg.new_histogram().unwrap()).unwrap());
        assert!(matches!(
            merge_encoded_into(&cfg, &mut empty, b"garbage!"),
            Err(HistogramError::Decode(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn open_counts_equal_one_histogram(
            samples in prop::collection::vec((0i64..=5_000_000_000_000, 1u32..4), 0..800),
            digits in 1u8..=4,
        ) {
            let cfg = HistogramConfig { significant_digits: digits, ..HistogramConfig::default() };
            let mut open = cfg.new_open().unwrap();
            let mut dense = reference(&cfg);
            let mut whole = cfg.new_histogram().unwrap();
            for &(ns, count) in &samples {
                let a = open.record(&cfg, ns, count);
                prop_assert_eq!(a, record_ns(&mut whole, ns, u64::from(count)));
                dense.record_n(ns_to_us(ns).min(cfg.highest_trackable_us()), count).unwrap();
            }
            let bytes = open.encode().unwrap();
            prop_assert_eq!(&bytes, &encode(&dense).unwrap());
            prop_assert_eq!(Open::decode(&bytes).unwrap().encode().unwrap(), bytes);
            let merged = merge_all_open(&cfg, [], [&open]).unwrap();
            prop_assert!(merged == whole);
            prop_assert_eq!(summarize(&merged), summarize(&whole));
            let mut acc = Vec::new();
            merge_open_into(&cfg, &mut acc, &open).unwrap();
            prop_assert!(decode(&acc).unwrap() == whole);
            prop_assert_eq!(open.len(), whole.len());
        }

        /// The bucket-wise merges write the bytes of the dense ones: an hour into its day,
        /// a second hour after it, and the day into a month that held another day, against
        /// one histogram of the configured range holding every value.
        #[test]
        fn sparse_merges_write_the_dense_merges_bytes(
            first in prop::collection::vec((0i64..=5_000_000_000_000, 1u32..4), 0..600),
            second in prop::collection::vec((0i64..=50_000_000_000, 1u32..1_000), 0..600),
            digits in 1u8..=4,
        ) {
            let cfg = HistogramConfig { significant_digits: digits, ..HistogramConfig::default() };
            let (mut a, mut b) = (cfg.new_open().unwrap(), cfg.new_open().unwrap());
            let mut whole = cfg.new_histogram().unwrap();
            for &(ns, count) in &first {
                a.record(&cfg, ns, count);
                record_ns(&mut whole, ns, u64::from(count));
            }
            let mut day = Vec::new();
            merge_open_into(&cfg, &mut day, &a).unwrap();
            let mut dense_day = cfg.new_histogram().unwrap();
            a.add_to(&mut dense_day);
            prop_assert_eq!(&day, &encode(&dense_day).unwrap());
            for &(ns, count) in &second {
                b.record(&cfg, ns, count);
                record_ns(&mut whole, ns, u64::from(count));
            }
            merge_open_into(&cfg, &mut day, &b).unwrap();
            prop_assert_eq!(&day, &encode(&whole).unwrap());
            let mut month = encode(&dense_day).unwrap();
            merge_encoded_into(&cfg, &mut month, &day).unwrap();
            let mut both = dense_day.clone();
            both.add(&whole).unwrap();
            prop_assert_eq!(&month, &encode(&both).unwrap());
        }
    }
}
