//! The fast path of Datadog v0.4 MessagePack: span maps read in place from the payload's
//! bytes, without serde. rmp-serde checks every string's UTF-8, the values read past too
//! (a third of the decoder's time); this reader checks only the strings it keeps (service,
//! name, resource) and steps over the rest by their lengths.
//!
//! It answers `None` for anything it does not expect, a duplicate key included; the caller
//! then takes the serde path, which says what is wrong, span by span. So the two accept the
//! same spans: this one is only ever faster, never more lenient.

use std::borrow::Cow;

use rmp::Marker;

use super::datadog_apm::{Meta, Metrics, Span};
use super::json::FlexU64;
use super::span_fields::{field, finished, Seen, Values};

/// Deepest nesting stepped over in a value read past (meta values are flat in practice).
const MAX_DEPTH: u32 = 16;

/// The payload's chunks of spans, or `None`.
pub(super) fn traces(bytes: &[u8]) -> Option<Vec<Vec<Span<'_>>>> {
    let mut r = bytes;
    let n = array_len(&mut r)?;
    let mut chunks = Vec::with_capacity(n.min(r.len()));
    for _ in 0..n {
        let m = array_len(&mut r)?;
        let mut spans = Vec::with_capacity(m.min(r.len()));
        for _ in 0..m {
            spans.push(span(&mut r)?);
        }
        chunks.push(spans);
    }
    Some(chunks)
}

fn span<'a>(r: &mut &'a [u8]) -> Option<Span<'a>> {
    let fields = map_len(r)?;
    let (mut span, mut seen) = (Span::default(), Seen::default());
    for _ in 0..fields {
        let key = raw_str(r)?;
        field(&mut span, &mut seen, key, &mut Pos(r))?;
    }
    finished(span, &seen)
}

/// The reader's position, as the span fields read their values.
struct Pos<'r, 'a>(&'r mut &'a [u8]);

impl<'a> Values<'a> for Pos<'_, 'a> {
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        text(self.0)
    }
    fn id(&mut self) -> Option<Option<FlexU64>> {
        Some(Some(FlexU64(u64::try_from(int(self.0)?).ok()?)))
    }
    fn int(&mut self) -> Option<i128> {
        int(self.0)
    }
    fn meta(&mut self) -> Option<Meta> {
        meta(self.0)
    }
    fn metrics(&mut self) -> Option<Metrics> {
        metrics(self.0)
    }
    fn skip(&mut self) -> Option<()> {
        skip(self.0, 0)
    }
}

fn meta(r: &mut &[u8]) -> Option<Meta> {
    let mut meta = Meta::default();
    if nil(r) {
        return Some(meta);
    }
    for _ in 0..map_len(r)? {
        if raw_str(r)? == b"http.status_code" {
            meta.status_code = std::str::from_utf8(raw_str(r)?).ok()?.trim().parse().ok();
        } else {
            skip(r, 0)?;
        }
    }
    Some(meta)
}

fn metrics(r: &mut &[u8]) -> Option<Metrics> {
    let mut metrics = Metrics::default();
    if nil(r) {
        return Some(metrics);
    }
    for _ in 0..map_len(r)? {
        let key = raw_str(r)?;
        if key == b"_top_level" || key == b"_dd.top_level" {
            metrics.top_level = Some(number(r)? != 0.0);
        } else {
            skip(r, 0)?;
        }
    }
    Some(metrics)
}

/// A kept string (checked UTF-8), or nil.
fn text<'a>(r: &mut &'a [u8]) -> Option<Option<Cow<'a, str>>> {
    if nil(r) {
        return Some(None);
    }
    Some(Some(Cow::Borrowed(std::str::from_utf8(raw_str(r)?).ok()?)))
}

/// Consumes a nil if one is next.
fn nil(r: &mut &[u8]) -> bool {
    let is_nil = r.first() == Some(&0xc0);
    if is_nil {
        *r = &r[1..];
    }
    is_nil
}

fn marker(r: &mut &[u8]) -> Option<Marker> {
    let (&first, rest) = r.split_first()?;
    *r = rest;
    Some(Marker::from_u8(first))
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

/// A big-endian unsigned integer of `n` bytes.
fn be(r: &mut &[u8], n: usize) -> Option<u64> {
    Some(take(r, n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A string's bytes, unchecked.
fn raw_str<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = match marker(r)? {
        Marker::FixStr(n) => usize::from(n),
        Marker::Str8 => be(r, 1)? as usize,
        Marker::Str16 => be(r, 2)? as usize,
        Marker::Str32 => be(r, 4)? as usize,
        _ => return None,
    };
    take(r, n)
}

fn array_len(r: &mut &[u8]) -> Option<usize> {
    match marker(r)? {
        Marker::FixArray(n) => Some(usize::from(n)),
        Marker::Array16 => Some(be(r, 2)? as usize),
        Marker::Array32 => Some(be(r, 4)? as usize),
        _ => None,
    }
}

fn map_len(r: &mut &[u8]) -> Option<usize> {
    match marker(r)? {
        Marker::FixMap(n) => Some(usize::from(n)),
        Marker::Map16 => Some(be(r, 2)? as usize),
        Marker::Map32 => Some(be(r, 4)? as usize),
        _ => None,
    }
}

/// Any integer, widened.
fn int(r: &mut &[u8]) -> Option<i128> {
    Some(match marker(r)? {
        Marker::FixPos(n) => i128::from(n),
        Marker::FixNeg(n) => i128::from(n),
        Marker::U8 => i128::from(be(r, 1)?),
        Marker::U16 => i128::from(be(r, 2)?),
        Marker::U32 => i128::from(be(r, 4)?),
        Marker::U64 => i128::from(be(r, 8)?),
        Marker::I8 => i128::from(be(r, 1)? as u8 as i8),
        Marker::I16 => i128::from(be(r, 2)? as u16 as i16),
        Marker::I32 => i128::from(be(r, 4)? as u32 as i32),
        Marker::I64 => i128::from(be(r, 8)? as i64),
        _ => return None,
    })
}

/// Any number, as a float (a metric may be written as either).
fn number(r: &mut &[u8]) -> Option<f64> {
    match r.first().map(|&b| Marker::from_u8(b))? {
        Marker::F32 => {
            *r = &r[1..];
            Some(f64::from(f32::from_bits(be(r, 4)? as u32)))
        }
        Marker::F64 => {
            *r = &r[1..];
            Some(f64::from_bits(be(r, 8)?))
        }
        _ => int(r).map(|v| v as f64),
    }
}

/// Steps over one value of any type.
fn skip(r: &mut &[u8], depth: u32) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (items, bytes) = match marker(r)? {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, 0),
        Marker::U8 | Marker::I8 => (0, 1),
        Marker::U16 | Marker::I16 => (0, 2),
        Marker::U32 | Marker::I32 | Marker::F32 => (0, 4),
        Marker::U64 | Marker::I64 | Marker::F64 => (0, 8),
        Marker::FixStr(n) => (0, usize::from(n)),
        Marker::Str8 | Marker::Bin8 => (0, be(r, 1)? as usize),
        Marker::Str16 | Marker::Bin16 => (0, be(r, 2)? as usize),
        Marker::Str32 | Marker::Bin32 => (0, be(r, 4)? as usize),
        Marker::FixArray(n) => (usize::from(n), 0),
        Marker::Array16 => (be(r, 2)? as usize, 0),
        Marker::Array32 => (be(r, 4)? as usize, 0),
        Marker::FixMap(n) => (2 * usize::from(n), 0),
        Marker::Map16 => (2 * be(r, 2)? as usize, 0),
        Marker::Map32 => (2 * be(r, 4)? as usize, 0),
        Marker::FixExt1 => (0, 2),
        Marker::FixExt2 => (0, 3),
        Marker::FixExt4 => (0, 5),
        Marker::FixExt8 => (0, 9),
        Marker::FixExt16 => (0, 17),
        Marker::Ext8 => (0, be(r, 1)? as usize + 1),
        Marker::Ext16 => (0, be(r, 2)? as usize + 1),
        Marker::Ext32 => (0, be(r, 4)? as usize + 1),
        Marker::Reserved => return None,
    };
    take(r, bytes)?;
    for _ in 0..items {
        skip(r, depth + 1)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;

    fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn span_map(extra: Vec<(Value, Value)>) -> Value {
        let mut fields = vec![
            (Value::from("service"), Value::from("orders")),
            (Value::from("resource"), Value::from("POST /orders")),
            (Value::from("span_id"), Value::from(u64::MAX)),
            (Value::from("parent_id"), Value::from(0)),
            (Value::from("start"), Value::from(1_796_167_400_000_000_000i64)),
            (Value::from("duration"), Value::from(13_879_519i64)),
        ];
        fields.extend(extra);
        Value::Map(fields)
    }

    #[test]
    fn reads_what_it_keeps_and_steps_over_every_other_type() {
        let skipped = Value::Array(vec![
            Value::Nil,
            Value::from(true),
            Value::from(-3),
            Value::from(70_000u32),
            Value::from(1.5f32),
            Value::from(2.5f64),
            Value::Binary(vec![1, 2, 3]),
            Value::Ext(7, vec![0; 8]),
            Value::Ext(7, vec![0; 20]),
            Value::Map(vec![(Value::from("k"), Value::from("x".repeat(300)))]),
        ]);
        let meta = Value::Map(vec![
            (Value::from("component"), Value::from("flask")),
            (Value::from("http.status_code"), Value::from("503")),
        ]);
        let metrics = Value::Map(vec![
            (Value::from("process_id"), Value::from(42)),
            (Value::from("_dd.top_level"), Value::from(1)),
        ]);
        let span = span_map(vec![
            (Value::from("type"), skipped),
            (Value::from("meta"), meta),
            (Value::from("metrics"), metrics),
            (Value::from("error"), Value::from(1)),
        ]);
        let bytes = encode(&Value::Array(vec![Value::Array(vec![span])]));
        let chunks = traces(&bytes).unwrap();
        let s = &chunks[0][0];
        assert_eq!(s.service.as_deref(), Some("orders"));
        assert_eq!(s.span_id.map(|id| id.0), Some(u64::MAX));
        assert_eq!(
            (s.start, s.duration, s.error),
            (1_796_167_400_000_000_000, 13_879_519, 1)
        );
        assert_eq!(s.meta.status_code, Some(503));
        assert_eq!(s.metrics.top_level, Some(true));
    }

    #[test]
    fn anything_unexpected_is_left_to_the_serde_path() {
        let one = |span: Value| encode(&Value::Array(vec![Value::Array(vec![span])]));
        let twice = span_map(vec![(Value::from("duration"), Value::from(5))]);
        assert!(traces(&one(twice)).is_none(), "a duplicate key");
        let text = span_map(vec![(Value::from("error"), Value::from("yes"))]);
        assert!(traces(&one(text)).is_none(), "a string for an integer");
        let no_start = Value::Map(vec![(Value::from("duration"), Value::from(5))]);
        assert!(traces(&one(no_start)).is_none(), "a required field missing");
        let bytes = one(span_map(vec![]));
        assert!(traces(&bytes[..bytes.len() - 1]).is_none(), "truncated");
        let mut deep = Value::from(1);
        for _ in 0..40 {
            deep = Value::Array(vec![deep]);
        }
        assert!(
            traces(&one(span_map(vec![(Value::from("x"), deep)]))).is_none(),
            "nested too deep"
        );
    }
}
