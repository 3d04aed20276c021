//! The fast path of Datadog JSON traces: span objects read in place from the payload's
//! bytes, without serde. serde_json's visitors and string checks were most of the decoder's
//! time; this reader checks the payload's UTF-8 once, borrows the strings it keeps (service,
//! name, resource) and steps over the rest.
//!
//! It answers `None` for anything it does not expect: an escape in a kept string or a key,
//! a duplicate key, a number that is not a plain integer where one is required, nesting
//! deeper than it steps over. The caller then takes the serde path, which decodes that
//! payload as before and says what is wrong, span by span. So the two accept the same
//! spans: this one is only ever faster, never more lenient.

use std::borrow::Cow;

use super::datadog_apm::{Meta, Metrics, Span};
use super::json::FlexU64;
use super::span_fields::{field, read, Field, Seen, Values};

/// Deepest nesting stepped over in a value read past.
const MAX_DEPTH: u32 = 16;

/// Reads the payload's chunks of spans, handing each to `each` with how many of the
/// payload's bytes are read (the spans in one buffer, reused from chunk to chunk, so that a
/// payload costs no vector per chunk); `None` when the reader does not take the payload, or
/// when `each` answers `None`.
pub(super) fn traces<'a>(bytes: &'a [u8], mut each: impl FnMut(&mut Vec<Span<'a>>, usize) -> Option<()>) -> Option<()> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader {
        s: text,
        b: text.as_bytes(),
        at: 0,
    };
    let mut spans = Vec::new();
    r.open(b'[')?;
    if !r.close(b']')? {
        loop {
            spans.clear();
            chunk(&mut r, &mut spans)?;
            each(&mut spans, r.at)?;
            if r.close(b']')? {
                break;
            }
            r.expect(b',')?;
        }
    }
    r.ws();
    (r.at == r.b.len()).then_some(())
}

fn chunk<'a>(r: &mut Reader<'a>, spans: &mut Vec<Span<'a>>) -> Option<()> {
    r.open(b'[')?;
    if r.close(b']')? {
        return Some(());
    }
    loop {
        // Filled where it lies in the buffer: a span built on the stack and moved in was
        // copied twice (out of the reader, into the vector), each copy a call to memcpy.
        spans.push(Span::default());
        let last = spans.last_mut()?;
        span(r, last)?;
        if r.close(b']')? {
            return Some(());
        }
        r.expect(b',')?;
    }
}

fn span<'a>(r: &mut Reader<'a>, span: &mut Span<'a>) -> Option<()> {
    let mut seen = Seen::default();
    r.open(b'{')?;
    if !r.close(b'}')? {
        loop {
            // Keys as tracers write them are recognised with their quotes and colon in one
            // compare; scanning each key, matching it and then finding the colon was a
            // fifth of the reader's time. Any other key (spaces, escapes, unknown names)
            // takes the general way.
            match r.known_key() {
                Some((Some(f), len)) => {
                    r.at += len;
                    read(span, &mut seen, f, r)?;
                }
                Some((None, len)) => {
                    r.at += len;
                    r.skip(0)?;
                }
                None => {
                    let key = r.string()?;
                    r.expect(b':')?;
                    field(span, &mut seen, key, r)?;
                }
            }
            if r.close(b'}')? {
                break;
            }
            r.expect(b',')?;
        }
    }
    seen.complete().then_some(())
}

/// Keys of a span as tracers write them, each with its quotes and colon: the field it
/// sets, or `None` for a key whose value is stepped over.
const KEYS: [(&[u8], Option<Field>); 12] = [
    (b"\"service\":", Some(Field::Service)),
    (b"\"name\":", Some(Field::Name)),
    (b"\"resource\":", Some(Field::Resource)),
    (b"\"span_id\":", Some(Field::SpanId)),
    (b"\"parent_id\":", Some(Field::ParentId)),
    (b"\"start\":", Some(Field::Start)),
    (b"\"duration\":", Some(Field::Duration)),
    (b"\"error\":", Some(Field::Error)),
    (b"\"meta\":", Some(Field::Meta)),
    (b"\"metrics\":", Some(Field::Metrics)),
    (b"\"trace_id\":", None),
    (b"\"type\":", None),
];

impl<'a> Values<'a> for Reader<'a> {
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        Reader::text(self)
    }
    fn id(&mut self) -> Option<Option<FlexU64>> {
        Reader::id(self)
    }
    fn int(&mut self) -> Option<i128> {
        Reader::int(self)
    }
    fn meta(&mut self) -> Option<Meta> {
        meta(self)
    }
    fn metrics(&mut self) -> Option<Metrics> {
        metrics(self)
    }
    fn skip(&mut self) -> Option<()> {
        Reader::skip(self, 0)
    }
}

fn meta(r: &mut Reader) -> Option<Meta> {
    let mut meta = Meta::default();
    if r.null() {
        return Some(meta);
    }
    r.object(|r, key| {
        if key == b"http.status_code" {
            meta.status_code = r.str()?.trim().parse().ok();
            Some(())
        } else if r.peek()? == b'"' {
            // Meta's values are strings: stepped over without the general skip's dispatch.
            r.skip_string()
        } else {
            r.skip(0)
        }
    })?;
    Some(meta)
}

fn metrics(r: &mut Reader) -> Option<Metrics> {
    let mut metrics = Metrics::default();
    if r.null() {
        return Some(metrics);
    }
    r.object(|r, key| {
        if key == b"_top_level" || key == b"_dd.top_level" {
            let token = r.number()?;
            let text = r.s.get(token)?;
            // A short integer (the mark is 0 or 1) is not zero when a digit is not: parsing
            // it as a float was most of reading the mark. Long or other numbers are parsed.
            if text.len() <= 20 && text.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                metrics.top_level = Some(text.bytes().any(|c| c.is_ascii_digit() && c != b'0'));
                return Some(());
            }
            let value: f64 = text.parse().ok()?;
            // Rust reads a number past f64's range as infinity, serde_json rejects it: leave
            // it to the serde path (found by fuzzing, datadog_apm_diff).
            if !value.is_finite() {
                return None;
            }
            metrics.top_level = Some(value != 0.0);
            Some(())
        } else {
            r.skip(0)
        }
    })?;
    Some(metrics)
}

/// A position in the payload: its text (checked UTF-8 once, so that slices between ASCII
/// delimiters are `str`s without another check) and the same bytes.
struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
}

/// Eight bytes of 0x01 and of 0x80: the constants of the word-at-a-time byte tests.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The bytes of `word` (read little-endian) that end or interrupt a string: a quote, a
/// backslash or a control character, each marked by its high bit. Only the lowest marked
/// byte is exact (a borrow may mark a byte above it), which is all `string_stop` reads.
fn stops(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

/// The value of eight ASCII digits (the first the most significant, as read
/// little-endian), or `None` when any of the eight bytes is not a digit.
fn eight_digits(word: u64) -> Option<u64> {
    // A byte is a digit when its high nibble is 3 and adding 6 leaves it 3 (0x30..=0x39);
    // a byte that fails the first test may carry into the next in the second, but then the
    // word is refused by the first anyway.
    let nibbles = ONES * 0xf0;
    let digits = ONES * 0x30;
    if word & nibbles != digits || word.wrapping_add(ONES * 0x06) & nibbles != digits {
        return None;
    }
    // Pairs, then fours, then all eight, each step a multiply and a shift on all lanes.
    let v = word - digits;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some((v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff)
}

impl<'a> Reader<'a> {
    /// The span key next (after any whitespace), when it is one of `KEYS` written as
    /// tracers write it: its field and the length of its quoted text with the colon. A
    /// key in `KEYS` is a whole key: its closing quote is part of the compare.
    fn known_key(&mut self) -> Option<(Option<Field>, usize)> {
        self.ws();
        let rest = self.b.get(self.at..)?;
        // The first letter (after the quote) rules out most keys before a compare.
        let letter = *rest.get(1)?;
        KEYS.iter()
            .filter(|(key, _)| key.get(1) == Some(&letter))
            .find_map(|(key, f)| rest.starts_with(key).then_some((*f, key.len())))
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    fn open(&mut self, c: u8) -> Option<()> {
        self.expect(c)
    }

    /// Consumes `c` if it is next.
    fn close(&mut self, c: u8) -> Option<bool> {
        let next = self.peek()? == c;
        if next {
            self.at += 1;
        }
        Some(next)
    }

    /// Consumes a `null` if one is next.
    fn null(&mut self) -> bool {
        let is_null = self.peek() == Some(b'n') && self.b[self.at..].starts_with(b"null");
        if is_null {
            self.at += 4;
        }
        is_null
    }

    /// An object, each member handed to `member` with its key (which has no escapes).
    fn object(&mut self, mut member: impl FnMut(&mut Reader<'a>, &'a [u8]) -> Option<()>) -> Option<()> {
        self.open(b'{')?;
        if self.close(b'}')? {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key)?;
            if self.close(b'}')? {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// Moves to the first quote, backslash or control character from here on (the end of a
    /// string or what interrupts it): eight bytes at a time, which is most of what reading
    /// past meta's strings costs.
    fn string_stop(&mut self) -> Option<u8> {
        // The position is kept in a register while scanning and stored once: stored back
        // to the reader after each word, it was a store per eight bytes.
        let mut at = self.at;
        while let Some(word) = self.b.get(at..).and_then(<[u8]>::first_chunk::<8>) {
            let word = u64::from_le_bytes(*word);
            let hits = stops(word);
            if hits != 0 {
                let bit = hits.trailing_zeros() & !7;
                self.at = at + (bit / 8) as usize;
                // The stopping byte from the word in hand: reading it again from the
                // payload was a dependent load that cost more than the scan.
                return Some((word >> bit) as u8);
            }
            at += 8;
        }
        self.at = at;
        loop {
            let c = *self.b.get(self.at)?;
            if c == b'"' || c == b'\\' || c < 0x20 {
                return Some(c);
            }
            self.at += 1;
        }
    }

    /// A string without escapes: its bytes between the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        Some(&self.b[self.string_span()?])
    }

    /// Where a string without escapes lies between its quotes, the quotes consumed.
    fn string_span(&mut self) -> Option<std::ops::Range<usize>> {
        self.expect(b'"')?;
        let start = self.at;
        if self.string_stop()? != b'"' {
            return None;
        }
        self.at += 1;
        Some(start..self.at - 1)
    }

    /// A string without escapes as text (the payload is UTF-8 and the quotes are ASCII, so
    /// the slice between them is text too).
    fn str(&mut self) -> Option<&'a str> {
        let span = self.string_span()?;
        self.s.get(span)
    }

    /// A kept string, or null.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.str()?)))
    }

    /// A span id: an unsigned integer, a decimal string, or null.
    fn id(&mut self) -> Option<Option<FlexU64>> {
        if self.null() {
            return Some(None);
        }
        let v = if self.peek()? == b'"' {
            self.str()?.parse().ok()?
        } else {
            u64::try_from(self.int()?).ok()?
        };
        Some(Some(FlexU64(v)))
    }

    /// A number that is a plain integer, its value accumulated as its digits are read
    /// (what parsing the token as text after checking its grammar cost twice over).
    fn int(&mut self) -> Option<i128> {
        self.ws();
        let negative = self.b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let first = self.at;
        let mut magnitude: u64 = 0;
        // Eight digits at a time while eight come (a start in nanoseconds has 19): each
        // digit on its own was a multiply-add in one long dependency chain.
        while let Some(eight) = self
            .b
            .get(self.at..)
            .and_then(<[u8]>::first_chunk::<8>)
            .and_then(|w| eight_digits(u64::from_le_bytes(*w)))
        {
            magnitude = magnitude.checked_mul(100_000_000)?.checked_add(eight)?;
            self.at += 8;
        }
        while let Some(d) = self.b.get(self.at).filter(|c| c.is_ascii_digit()) {
            // Past u64 no field takes it: the serde path says so.
            magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - first;
        // No digits, a leading zero (not JSON), or a fraction or exponent (a float, which
        // the serde path rejects where an integer is required).
        if digits == 0
            || (digits > 1 && self.b[first] == b'0')
            || matches!(self.b.get(self.at), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        // serde_json reads `-0` as the float -0.0, which the serde path rejects where an
        // integer is required: leave it to that path (found by fuzzing, datadog_apm_diff).
        if negative && magnitude == 0 {
            return None;
        }
        let value = i128::from(magnitude);
        Some(if negative { -value } else { value })
    }

    /// Where a number's text lies, checked against JSON's grammar.
    fn number(&mut self) -> Option<std::ops::Range<usize>> {
        self.ws();
        let start = self.at;
        let digits = |r: &mut Reader| {
            let from = r.at;
            while r.b.get(r.at).is_some_and(u8::is_ascii_digit) {
                r.at += 1;
            }
            r.at > from
        };
        if self.b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let first = self.at;
        if !digits(self) || (self.b[first] == b'0' && self.at - first > 1) {
            return None;
        }
        if self.b.get(self.at) == Some(&b'.') {
            self.at += 1;
            digits(self).then_some(())?;
        }
        if matches!(self.b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            digits(self).then_some(())?;
        }
        Some(start..self.at)
    }

    /// A string with any escapes, checked as serde_json checks them.
    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            match self.string_stop()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    let escape = *self.b.get(self.at + 1)?;
                    self.at += 2;
                    match escape {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.at..self.at + 4)?;
                            hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            self.at += 4;
                        }
                        _ => return None,
                    }
                }
                // A control character: JSON strings may not hold one raw.
                _ => return None,
            }
        }
    }

    /// Steps over one value of any type.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.at += 1;
                if self.close(b'}')? {
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.expect(b':')?;
                    self.skip(depth + 1)?;
                    if self.close(b'}')? {
                        return Some(());
                    }
                    self.expect(b',')?;
                }
            }
            b'[' => {
                self.at += 1;
                if self.close(b']')? {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if self.close(b']')? {
                        return Some(());
                    }
                    self.expect(b',')?;
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.at..].starts_with(word).then(|| self.at += word.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks the reader hands over, collected.
    fn read(bytes: &[u8]) -> Option<Vec<Vec<Span<'_>>>> {
        let mut chunks = Vec::new();
        traces(bytes, |spans, _| {
            chunks.push(std::mem::take(spans));
            Some(())
        })?;
        Some(chunks)
    }

    const SPAN: &str = r#"{"service":"orders","resource":"POST /orders","span_id":"18446744073709551615","parent_id":null,"start":1796167400000000000,"duration":13879519,"error":1,"type":"web","meta":{"component":"fl\u00e4sk \"q\"","http.status_code":" 503 "},"metrics":{"process_id":4711.5e0,"_dd.top_level":1,"x":[true,false,null,{"a":[-0.5E+3]}]}}"#;

    #[test]
    fn reads_what_it_keeps_and_steps_over_every_other_value() {
        let payload = format!(" [ [ {SPAN} ] , [ ] ]\n");
        let chunks = read(payload.as_bytes()).unwrap();
        assert_eq!(chunks.len(), 2);
        let s = &chunks[0][0];
        assert_eq!(s.service.as_deref(), Some("orders"));
        assert_eq!(s.resource.as_deref(), Some("POST /orders"));
        assert_eq!(
            (s.span_id.map(|i| i.0), s.parent_id.map(|i| i.0)),
            (Some(u64::MAX), None)
        );
        assert_eq!(
            (s.start, s.duration, s.error),
            (1_796_167_400_000_000_000, 13_879_519, 1)
        );
        assert_eq!((s.meta.status_code, s.metrics.top_level), (Some(503), Some(true)));
    }

    #[test]
    fn the_word_scan_stops_where_a_byte_scan_does() {
        // Each stopping byte (and a UTF-8 letter that must not stop) at every offset of a
        // string longer than two words, from each starting point: the word-at-a-time scan
        // must find the same first stop as a byte-at-a-time one, or run out where it does.
        for stop in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0xc3] {
            for at in 0..20 {
                let mut text = vec![b'a'; 20];
                text[at] = stop;
                text[(at + 5) % 20] = b'"';
                for from in 0..text.len() {
                    let mut r = Reader {
                        s: "",
                        b: &text,
                        at: from,
                    };
                    let expected = text[from..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .map(|i| (from + i, text[from + i]));
                    let found = r.string_stop().map(|c| (r.at, c));
                    assert_eq!(found, expected, "stop {stop:#x} at {at}, from {from}");
                }
            }
        }
    }

    #[test]
    fn eight_digits_are_read_as_their_number_or_refused() {
        let word = |text: &[u8; 8]| eight_digits(u64::from_le_bytes(*text));
        assert_eq!(word(b"00000000"), Some(0));
        assert_eq!(word(b"12345678"), Some(12_345_678));
        assert_eq!(word(b"99999999"), Some(99_999_999));
        for refused in [b"1234567/", b"1234567:", b"1234\xff678", b"-1234567", b"1234 678"] {
            assert_eq!(word(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn integers_are_read_as_serde_reads_them_or_left() {
        let int = |text: &str| {
            let mut r = Reader {
                s: text,
                b: text.as_bytes(),
                at: 0,
            };
            r.int().filter(|_| r.at == text.len())
        };
        assert_eq!(int("0"), Some(0));
        assert_eq!(int(" 42"), Some(42));
        assert_eq!(int("-9223372036854775808"), Some(i128::from(i64::MIN)));
        assert_eq!(int("18446744073709551615"), Some(i128::from(u64::MAX)));
        assert_eq!(int("1700000000010009000"), Some(1_700_000_000_010_009_000));
        for left in ["18446744073709551616", "-0", "01", "-", "", "1.0", "1e3", "2E1", "+1"] {
            assert_eq!(int(left), None, "{left:?}");
        }
    }

    #[test]
    fn anything_unexpected_is_left_to_the_serde_path() {
        let one = |span: &str| format!("[[{span}]]");
        let cases = [
            (
                SPAN.replace(r#""service":"orders""#, r#""service":"ord\u0065rs""#),
                "an escape in a kept string",
            ),
            (
                SPAN.replace(r#""error":1"#, r#""error":1,"duration":5"#),
                "a duplicate key",
            ),
            (
                SPAN.replace(r#""duration":13879519"#, r#""duration":1.5"#),
                "a float for an integer",
            ),
            (
                SPAN.replace(r#""duration":13879519"#, r#""duration":"13879519""#),
                "a string for an integer",
            ),
            (SPAN.replace(r#""duration":13879519,"#, ""), "a required field missing"),
            (
                SPAN.replace(r#""duration":13879519"#, r#""duration":-0"#),
                "-0, a float to serde_json",
            ),
            (SPAN.replace("4711.5e0", "4711."), "a number JSON does not allow"),
            (SPAN.replace("4711.5e0", "0471"), "a leading zero"),
            (
                SPAN.replace(r#""_dd.top_level":1"#, r#""_dd.top_level":1e309"#),
                "a number past f64's range",
            ),
            (SPAN.replace(r#"\"q\""#, r#"\q"#), "an escape JSON does not have"),
            (
                format!(
                    "{}{}",
                    &SPAN[..SPAN.len() - 1],
                    r#","deep":[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}"#
                ),
                "nested too deep",
            ),
        ];
        for (span, what) in &cases {
            assert!(read(one(span).as_bytes()).is_none(), "{what}");
        }
        assert!(read(format!("{} x", one(SPAN)).as_bytes()).is_none(), "trailing text");
        assert!(read(&one(SPAN).as_bytes()[..50]).is_none(), "truncated");
        assert!(
            read(b"[[{\"start\":1,\"duration\":2,\"k\":\"\xff\"}]]").is_none(),
            "not UTF-8"
        );
        assert!(read(one(SPAN).as_bytes()).is_some(), "the span itself is read");
    }
}
