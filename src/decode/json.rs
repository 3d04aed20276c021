//! Shared JSON plumbing for the decoders: parsing one or more JSON documents from a record
//! with typed structs, and turning serde's errors into `DecodeError`s with a line, a column
//! and the field path. The fast path is plain serde_json; only a failing document is parsed
//! a second time with path tracking, so the good path pays nothing for good errors.

use std::borrow::Cow;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny};

use super::{DecodeError, FieldError, Format, Location};

/// Calls `each` for every JSON document in `bytes` (one, or several separated by whitespace,
/// as in NDJSON). Stops at the first error. An input with no document at all is an error.
pub(crate) fn for_each_document<'a, T, F>(format: Format, bytes: &'a [u8], mut each: F) -> Result<(), DecodeError>
where
    T: Deserialize<'a>,
    F: FnMut(T) -> Result<(), FieldError>,
{
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    let mut documents = 0usize;
    loop {
        let start = skip_whitespace(bytes, stream.byte_offset());
        match stream.next() {
            None => break,
            Some(Ok(doc)) => {
                documents += 1;
                each(doc).map_err(|e| DecodeError {
                    format,
                    location: location_of(bytes, start),
                    field: e.field,
                    message: e.message,
                })?;
            }
            Some(Err(err)) => return Err(syntax_error::<T>(format, bytes, start, &err)),
        }
    }
    if documents == 0 {
        return Err(DecodeError {
            format,
            location: Location::Record,
            field: String::new(),
            message: "expected a JSON document, found an empty record".into(),
        });
    }
    Ok(())
}

/// Turns a serde_json error on the document starting at `start` into a `DecodeError` with
/// the field path, found by parsing that document again with serde_path_to_error.
fn syntax_error<'a, T: Deserialize<'a>>(
    format: Format,
    bytes: &'a [u8],
    start: usize,
    err: &serde_json::Error,
) -> DecodeError {
    let doc = bytes.get(start..).unwrap_or_default();
    let mut de = serde_json::Deserializer::from_slice(doc);
    let field = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => e.path().to_string(),
        Ok(_) => String::new(),
    };
    let field = if field == "." { String::new() } else { field };
    let text = err.to_string();
    // serde_json appends " at line L column C"; the location is reported separately.
    let message = match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    };
    let location = if err.line() == 0 {
        Location::Record
    } else {
        Location::Line {
            line: err.line() as u64,
            column: err.column() as u64,
        }
    };
    DecodeError {
        format,
        location,
        field,
        message,
    }
}

/// One item (a span, an alert) of a payload parsed on its own, for partial acceptance:
/// `raw` borrows from `payload`, and an error names the item's `path` and the field in it,
/// located in the payload.
pub(crate) fn parse_item<'a, T: Deserialize<'a>>(
    format: Format,
    payload: &[u8],
    raw: &'a serde_json::value::RawValue,
    path: &str,
) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let field = e.path().to_string();
        let text = inner.to_string();
        let message = text.rfind(" at line ").map_or(text.clone(), |p| text[..p].to_string());
        DecodeError {
            format,
            location: located(payload, raw, inner.line(), inner.column()),
            field: if field == "." {
                path.to_string()
            } else {
                format!("{path}.{field}")
            },
            message,
        }
    })
}

/// A semantic error of an item that parsed: at the item's start in the payload.
pub(crate) fn item_error(
    format: Format,
    payload: &[u8],
    raw: &serde_json::value::RawValue,
    error: FieldError,
) -> DecodeError {
    DecodeError {
        format,
        location: located(payload, raw, 1, 1),
        field: error.field,
        message: error.message,
    }
}

/// The payload's line and column of a 1-based position within the item `raw`.
fn located(payload: &[u8], raw: &serde_json::value::RawValue, line: usize, column: usize) -> Location {
    // RawValue borrows from the payload: its offset is the pointers' difference.
    let offset = (raw.get().as_ptr() as usize).saturating_sub(payload.as_ptr() as usize);
    let before = payload.get(..offset).unwrap_or(payload);
    let lines_before = before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = if line <= 1 {
        offset - line_start + column
    } else {
        column
    };
    Location::Line {
        line: (lines_before + line.max(1)) as u64,
        column: column as u64,
    }
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// The 1-based line and column of byte `pos`.
fn location_of(bytes: &[u8], pos: usize) -> Location {
    let before = bytes.get(..pos).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let column = (before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)) as u64 + 1;
    Location::Line { line, column }
}

/// A JSON value that may arrive as a string or as a number (webhook bodies built by
/// templates write numbers either way). Numbers keep their JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A 64-bit integer written as a JSON number or as a decimal string (OTLP/JSON writes
/// 64-bit values as strings; older producers wrote numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FlexU64(pub u64);

impl<'de> Deserialize<'de> for FlexU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = FlexU64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an unsigned 64-bit integer as a number or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FlexU64, E> {
                Ok(FlexU64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FlexU64, E> {
                u64::try_from(v)
                    .map(FlexU64)
                    .map_err(|_| E::custom(format!("negative value {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexU64, E> {
                v.parse()
                    .map(FlexU64)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// Skips any value; used for fields a decoder reads past.
pub(crate) type Skip = Option<IgnoredAny>;

/// Is this string a template placeholder that was never filled in: a Zabbix macro
/// (`{EVENT.ID}`, `{$ZABBIX.URL}`, `*UNKNOWN*`) or a Datadog variable (`$DATE`)?
pub(crate) fn is_unexpanded(value: &str) -> bool {
    let v = value.trim();
    if v == "*UNKNOWN*" {
        return true;
    }
    if let Some(inner) = v.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        return !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '_');
    }
    if let Some(name) = v.strip_prefix('$') {
        return !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Doc {
        #[allow(dead_code)]
        a: u32,
    }

    #[test]
    fn several_documents_and_error_path() {
        let mut seen = 0;
        for_each_document::<Doc, _>(Format::ZabbixExport, b"{\"a\":1}\n{\"a\":2}\n", |_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 2);

        let err =
            for_each_document::<Doc, _>(Format::ZabbixExport, b"{\"a\":1}\n{\"a\":\"x\"}", |_| Ok(())).unwrap_err();
        assert_eq!(err.field, "a");
        assert_eq!(err.location, Location::Line { line: 2, column: 8 });
        assert!(err.message.contains("expected u32"), "{}", err.message);
    }

    #[test]
    fn field_errors_point_at_their_document() {
        let err = for_each_document::<Doc, _>(Format::Icinga2, b"{\"a\":1}\n  {\"a\":2}", |d| {
            if d.a == 2 {
                Err(FieldError::new("a", "two is not allowed"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.location, Location::Line { line: 2, column: 3 });
        assert_eq!(err.field, "a");
    }

    #[test]
    fn empty_and_garbage() {
        let err = for_each_document::<Doc, _>(Format::Icinga2, b"  \n", |_| Ok(())).unwrap_err();
        assert_eq!(err.location, Location::Record);
        let err = for_each_document::<Doc, _>(Format::Icinga2, b"{\"a\":1} xx", |_| Ok(())).unwrap_err();
        assert!(matches!(err.location, Location::Line { line: 1, .. }));
    }

    #[test]
    fn unexpanded_placeholders() {
        assert!(is_unexpanded("{EVENT.RECOVERY.DATE}"));
        assert!(is_unexpanded("{$ZABBIX.URL}"));
        assert!(is_unexpanded("*UNKNOWN*"));
        assert!(is_unexpanded("$DATE"));
        assert!(!is_unexpanded("{\"a\":1}"));
        assert!(!is_unexpanded("$5 off"));
        assert!(!is_unexpanded("Average"));
    }
}
