//! The Datadog span's fields as both in-place readers (`json_walk`, `msgpack_walk`) fill
//! them: which key sets which field, with which type, which keys are required, and that a
//! key may come once. Each reader supplies only how a value of a kind is read from its wire
//! format ([`Values`]); `None` anywhere sends the payload to the serde path.

use std::borrow::Cow;

use super::datadog_apm::{Meta, Metrics, Span};
use super::json::FlexU64;

/// How a reader reads each kind of value a span holds.
pub(super) trait Values<'a> {
    /// A kept string, or null.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>>;
    /// A span id, or null.
    fn id(&mut self) -> Option<Option<FlexU64>>;
    /// A plain integer.
    fn int(&mut self) -> Option<i128>;
    fn meta(&mut self) -> Option<Meta>;
    fn metrics(&mut self) -> Option<Metrics>;
    /// Steps over a value of any type.
    fn skip(&mut self) -> Option<()>;
}

/// Fields seen so far in one span: a bit per field.
#[derive(Default)]
pub(super) struct Seen(u16);

/// `start` and `duration`: the fields serde requires.
const REQUIRED: u16 = 32 | 64;

/// Reads the value of `key` into `span`; `None` when it is not as expected or comes twice.
pub(super) fn field<'a>(span: &mut Span<'a>, seen: &mut Seen, key: &[u8], r: &mut impl Values<'a>) -> Option<()> {
    let bit = match key {
        b"service" => {
            span.service = r.text()?;
            1
        }
        b"name" => {
            span.name = r.text()?;
            2
        }
        b"resource" => {
            span.resource = r.text()?;
            4
        }
        b"span_id" => {
            span.span_id = r.id()?;
            8
        }
        b"parent_id" => {
            span.parent_id = r.id()?;
            16
        }
        b"start" => {
            span.start = i64::try_from(r.int()?).ok()?;
            32
        }
        b"duration" => {
            span.duration = i64::try_from(r.int()?).ok()?;
            64
        }
        b"error" => {
            span.error = i32::try_from(r.int()?).ok()?;
            128
        }
        b"meta" => {
            span.meta = r.meta()?;
            256
        }
        b"metrics" => {
            span.metrics = r.metrics()?;
            512
        }
        _ => {
            r.skip()?;
            0
        }
    };
    if seen.0 & bit != 0 {
        return None;
    }
    seen.0 |= bit;
    Some(())
}

/// The span, when every required field came.
pub(super) fn finished<'a>(span: Span<'a>, seen: &Seen) -> Option<Span<'a>> {
    (seen.0 & REQUIRED == REQUIRED).then_some(span)
}
