//! The steady traffic: three requests a minute per service, each a pure function of the
//! seed, the service, the minute and the slot, changed by the script's degradations. Both
//! the APM payloads (`payloads`) and the oracle (`oracle`) read spans from here, so that they
//! agree on every request without sharing state or holding a month of spans in memory.

use super::scenario::{Effect, Scenario};
use super::MINUTE;
use crate::time::NS_PER_SEC;

/// Seeds the generator: the same month always gives the same bytes.
const SEED: u64 = 0x51af_10e0_2026_0001;

/// A service's steady traffic: one request of each resource per minute.
pub(super) struct Traffic {
    pub(super) service: &'static str,
    /// Resource and its typical latency in ms; actual latency is 0.6 to 1.4 times that.
    pub(super) resources: [(&'static str, f64); 3],
}

pub(super) const TRAFFIC: [Traffic; 3] = [
    Traffic {
        service: "webshop",
        resources: [("GET /products", 140.0), ("GET /cart", 90.0), ("POST /checkout", 420.0)],
    },
    Traffic {
        service: "payments",
        resources: [
            ("POST /v1/authorize", 260.0),
            ("POST /v1/capture", 190.0),
            ("GET /v1/payments/{id}", 45.0),
        ],
    },
    Traffic {
        service: "search",
        resources: [
            ("GET /search", 220.0),
            ("GET /search/suggest", 70.0),
            ("GET /search/facets", 150.0),
        ],
    },
];

/// Seconds into each minute at which the three requests start (plus up to 9 s of jitter),
/// so that a span's minute decides which scripted interval it falls in.
const OFFSETS_S: [i64; 3] = [5, 25, 45];

/// One request as its span says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    /// Index into the service's `resources`.
    pub(super) resource: usize,
    pub(super) start_ns: i64,
    pub(super) duration_ns: i64,
    pub(super) error: bool,
    pub(super) status: u16,
    pub(super) trace_id: u64,
    pub(super) span_id: u64,
}

pub(super) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from 53 random bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Scenario {
    /// Random bits that depend on nothing but the seed and `a`, `b`, `c`: the generator's only
    /// source of variety, so that any part of the month can be made again alone.
    pub(super) fn noise(&self, a: u64, b: u64, c: u64) -> u64 {
        splitmix(SEED ^ splitmix(a ^ splitmix(b ^ splitmix(c))))
    }

    /// The request of `slot` in the minute starting at `minute` of service `s`: a pure
    /// function of those, so spans can be generated (or recounted) in any order.
    fn span(&self, s: usize, minute: i64, slot: usize) -> Span {
        let r = |k: u64| self.noise(s as u64, minute as u64, ((slot as u64) << 8) | k);
        let start_ns = minute + (OFFSETS_S[slot] + (r(0) % 10) as i64) * NS_PER_SEC + (r(1) % 1_000_000) as i64 * 1000;
        let jitter = 0.6 + 0.8 * unit(r(2));
        let (resource, base) = TRAFFIC[s].resources[slot];
        let effect = self
            .degradations
            .iter()
            .find(|d| {
                d.service == TRAFFIC[s].service
                    && d.resource.is_none_or(|r| r == resource)
                    && (d.from..d.to).contains(&start_ns)
            })
            .map(|d| d.effect);
        let (ms, error, status) = match effect {
            None => (base * jitter, false, 200),
            Some(Effect::Slow(factor)) => (base * factor * jitter, false, 200),
            Some(Effect::Fail { status, ms }) => (ms * jitter, true, status),
        };
        Span {
            resource: slot,
            start_ns,
            // Tracers measure in ns; microseconds keep the figures readable.
            duration_ns: (ms * 1000.0).round() as i64 * 1000,
            error,
            status,
            trace_id: r(3) >> 1,
            span_id: r(4) >> 1,
        }
    }

    /// Every span of service `s` whose minute starts in [from, to).
    pub(super) fn spans(&self, s: usize, from: i64, to: i64) -> impl Iterator<Item = Span> + '_ {
        (0..)
            .map(move |i| from + i * MINUTE)
            .take_while(move |&m| m < to)
            .flat_map(move |m| (0..3).map(move |slot| self.span(s, m, slot)))
    }
}
