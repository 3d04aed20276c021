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
const REQUIRED: u16 = 1 << Field::Start as u16 | 1 << Field::Duration as u16;

/// The span's fields a reader fills (any other key is stepped over).
#[derive(Clone, Copy)]
pub(super) enum Field {
    Service,
    Name,
    Resource,
    SpanId,
    ParentId,
    Start,
    Duration,
    Error,
    Meta,
    Metrics,
}

impl Field {
    /// The field a key names.
    fn of(key: &[u8]) -> Option<Field> {
        Some(match key {
            b"service" => Field::Service,
            b"name" => Field::Name,
            b"resource" => Field::Resource,
            b"span_id" => Field::SpanId,
            b"parent_id" => Field::ParentId,
            b"start" => Field::Start,
            b"duration" => Field::Duration,
            b"error" => Field::Error,
            b"meta" => Field::Meta,
            b"metrics" => Field::Metrics,
            _ => return None,
        })
    }
}

/// Reads the value of `key` into `span`; `None` when it is not as expected or comes twice.
pub(super) fn field<'a>(span: &mut Span<'a>, seen: &mut Seen, key: &[u8], r: &mut impl Values<'a>) -> Option<()> {
    match Field::of(key) {
        Some(f) => read(span, seen, f, r),
        None => r.skip(),
    }
}

/// Reads the value of field `f` into `span`; `None` when it is not as expected or comes
/// twice. For a reader that has recognised the key itself.
pub(super) fn read<'a>(span: &mut Span<'a>, seen: &mut Seen, f: Field, r: &mut impl Values<'a>) -> Option<()> {
    match f {
        Field::Service => span.service = r.text()?,
        Field::Name => span.name = r.text()?,
        Field::Resource => span.resource = r.text()?,
        Field::SpanId => span.span_id = r.id()?,
        Field::ParentId => span.parent_id = r.id()?,
        Field::Start => span.start = i64::try_from(r.int()?).ok()?,
        Field::Duration => span.duration = i64::try_from(r.int()?).ok()?,
        Field::Error => span.error = i32::try_from(r.int()?).ok()?,
        Field::Meta => span.meta = r.meta()?,
        Field::Metrics => span.metrics = r.metrics()?,
    }
    let bit = 1 << f as u16;
    if seen.0 & bit != 0 {
        return None;
    }
    seen.0 |= bit;
    Some(())
}

/// The span, when every required field came.
pub(super) fn finished<'a>(span: Span<'a>, seen: &Seen) -> Option<Span<'a>> {
    seen.complete().then_some(span)
}

impl Seen {
    /// Whether every required field came.
    pub(super) fn complete(&self) -> bool {
        self.0 & REQUIRED == REQUIRED
    }
}
