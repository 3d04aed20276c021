//! What the OTLP decoders (`otlp-json`, `otlp-proto`) share: the role of each span in its
//! trace, decided over the whole request, so the order of spans does not matter:
//! - no parent span id: the trace's root;
//! - a remote parent (`flags` with both `HAS_IS_REMOTE` 0x100 and `IS_REMOTE` 0x200): an
//!   entry span, where a request came in from another process;
//! - kind SERVER or CONSUMER: an entry span when its parent is not in the request, or is of
//!   another service; internal when the parent is in the request and of the same service;
//! - anything else (INTERNAL, CLIENT, PRODUCER under a local parent): internal. A parent
//!   missing from the request says nothing here: SDKs export spans in batches as they end,
//!   so a trace is routinely split over requests.

use std::collections::HashMap;

use crate::model::SpanRole;

/// The service name OpenTelemetry SDKs use when none is configured.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `flags` bits: the parent's remoteness is known, and the parent is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// What the rule needs of a span: its resource (service) index, ids and kind.
pub(crate) struct Links<'a> {
    pub resource: usize,
    pub trace: &'a [u8],
    pub id: &'a [u8],
    /// Empty for a root.
    pub parent: &'a [u8],
    /// Kind SERVER or CONSUMER: the span serves a request or a message.
    pub serves: bool,
    pub flags: u32,
}

/// The roles of a request's spans, in order; `services[r]` is resource r's service.
pub(crate) fn roles(spans: &[Links], services: &[String]) -> Vec<SpanRole> {
    let owners: HashMap<(&[u8], &[u8]), usize> = spans.iter().map(|s| ((s.trace, s.id), s.resource)).collect();
    spans
        .iter()
        .map(|span| {
            if span.parent.is_empty() {
                return SpanRole::Root;
            }
            if span.flags & (HAS_IS_REMOTE | IS_REMOTE) == HAS_IS_REMOTE | IS_REMOTE {
                return SpanRole::Entry;
            }
            let parent_elsewhere = owners
                .get(&(span.trace, span.parent))
                .is_none_or(|&p| services.get(p) != services.get(span.resource));
            if span.serves && parent_elsewhere {
                SpanRole::Entry
            } else {
                SpanRole::Internal
            }
        })
        .collect()
}
