//! The SLA engine's incremental checkpoint: a head (the frontier, counters, ignored spans
//! not yet reported) and one item per contracted service's state, incident, firing outage
//! alert, running month's late-sample count, coverage and closed days, final month open to
//! corrections, and incident timer. A batch writes the head and the items it
//! changed ([`SlaEngine::take_changes`]); a restore reads them back into exactly the state a
//! whole snapshot gives ([`SlaEngine::restore_items`]).
//!
//! One field is derived rather than written: a service's `evaluated_to`. Every clock move
//! (in effect) walks every service to the new frontier, so writing it would make every
//! service a changed row every minute. After each `advance` it is read as `max(its value
//! when its row was last written, frontier)` (the walk only raises it, to the target, a
//! service is created at or after the frontier, and one not due is left behind and read so:
//! `due.rs`), so the restore sets exactly that. The due index is derived too, rebuilt here.

use super::*;
use crate::engine::changelog::{self, Changes, Item};

/// Item kinds, as stored.
const SERVICE: &str = "service";
const INCIDENT: &str = "incident";
const OUTAGE: &str = "outage";
const LATE: &str = "late";
const CLOCK: &str = "incident_clock";
const COVERAGE: &str = "coverage";
const DAYS: &str = "days";
const CORRECTION: &str = "correction";
/// Version of the head and items.
const HEAD_VERSION: u32 = 1;

/// The head as written (borrowed) and as read.
type HeadRef<'a> = (u32, i64, &'a SlaStats, u64, &'a BTreeMap<String, u64>);
type Head = (u32, i64, SlaStats, u64, BTreeMap<String, u64>);

impl SlaEngine {
    /// What changed since the last call: the head, the items touched (with their current
    /// bytes) and those removed; after a new engine or a whole-snapshot restore, every item.
    pub fn take_changes(&mut self) -> Changes {
        let s = &mut self.state;
        let full = std::mem::take(&mut self.full);
        if full {
            s.services.mark_all();
            s.incidents.mark_all();
            s.alert_outages.mark_all();
            s.late_in_month.mark_all();
            s.incident_clocks.mark_all();
            s.coverage.mark_all();
            s.days.mark_all();
            s.corrections.mark_all();
        }
        // `spans_ignored` is not serialised with the counters (see `SlaStats`).
        let head: HeadRef<'_> = (
            HEAD_VERSION,
            s.frontier,
            &s.stats,
            s.stats.spans_ignored,
            &s.ignored_pending,
        );
        let mut changes = Changes {
            full,
            // Serialising plain data structures into a Vec cannot fail.
            head: postcard::to_stdvec(&head).unwrap_or_default(),
            ..Changes::default()
        };
        changelog::collect(&mut changes, SERVICE, &mut s.services);
        changelog::collect(&mut changes, INCIDENT, &mut s.incidents);
        changelog::collect(&mut changes, OUTAGE, &mut s.alert_outages);
        changelog::collect(&mut changes, LATE, &mut s.late_in_month);
        changelog::collect(&mut changes, CLOCK, &mut s.incident_clocks);
        changelog::collect(&mut changes, COVERAGE, &mut s.coverage);
        changelog::collect(&mut changes, DAYS, &mut s.days);
        changelog::collect(&mut changes, CORRECTION, &mut s.corrections);
        changes
    }

    /// An engine with the given config and the state of a head and its items (the rows an
    /// incremental checkpoint left).
    pub fn restore_items(
        config: &SlaConfig,
        correlation: &CorrelateConfig,
        catalog: Catalog,
        head: &[u8],
        items: &[Item],
    ) -> Result<SlaEngine, SlaError> {
        let bad = |e: String| SlaError::Snapshot(e);
        let (version, frontier, mut stats, spans_ignored, ignored_pending): Head =
            postcard::from_bytes(head).map_err(|e| bad(format!("head: {e}")))?;
        if version != HEAD_VERSION {
            return Err(bad(format!("head version {version}, this build reads {HEAD_VERSION}")));
        }
        stats.spans_ignored = spans_ignored;
        let mut services: BTreeMap<String, ServiceState> = BTreeMap::new();
        let mut incidents = BTreeMap::new();
        let mut outages = BTreeMap::new();
        let mut late = BTreeMap::new();
        let mut clocks = BTreeMap::new();
        let mut coverage = BTreeMap::new();
        let mut days = BTreeMap::new();
        let mut corrections = BTreeMap::new();
        for item in items {
            match item.kind.as_str() {
                SERVICE => changelog::restore_into(&mut services, item),
                INCIDENT => changelog::restore_into(&mut incidents, item),
                OUTAGE => changelog::restore_into(&mut outages, item),
                LATE => changelog::restore_into(&mut late, item),
                CLOCK => changelog::restore_into(&mut clocks, item),
                COVERAGE => changelog::restore_into(&mut coverage, item),
                DAYS => changelog::restore_into(&mut days, item),
                CORRECTION => changelog::restore_into(&mut corrections, item),
                other => Err(format!("unknown item kind {other:?}")),
            }
            .map_err(bad)?;
        }
        for st in services.values_mut() {
            st.evaluated_to = st.evaluated_to.max(frontier);
        }
        let state = State {
            frontier,
            services: Tracked::from_map(services),
            incidents: Tracked::from_map(incidents),
            alert_outages: Tracked::from_map(outages),
            stats,
            ignored_pending,
            late_in_month: Tracked::from_map(late),
            incident_clocks: Tracked::from_map(clocks),
            coverage: Tracked::from_map(coverage),
            days: Tracked::from_map(days),
            corrections: Tracked::from_map(corrections),
        };
        let mut engine = SlaEngine {
            rules: Rules::new(config, correlation, catalog)?,
            state,
            full: false,
            due: BTreeSet::new(),
            walks: 0,
            #[cfg(test)]
            walk_all: false,
        };
        // The due index is derived: every service from the restored frontier.
        engine.rebuild_due();
        Ok(engine)
    }
}
