//! Clocks that move without events: the wall clock for a worker whose inputs are all quiet
//! (so a quiet service's days and months close), and months an operator closes now
//! (`POST /v1/months/{YYYY-MM}/close`, `slaflow close`). Both move the engines' clock with
//! `Engines::advance_to`, which never goes back.

use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::replay::{Engines, Record};

/// How often a quiet worker's clock follows the wall clock again.
const TICK: Duration = Duration::from_secs(60);

/// A worker's wall-clock follower (`[kafka] wall_clock_after`).
pub(crate) struct WallClock {
    after: Duration,
    /// When to follow again, once following; `None` until the inputs go quiet.
    next: Option<Instant>,
}

impl WallClock {
    pub(crate) fn new(after: Duration) -> WallClock {
        WallClock { after, next: None }
    }

    /// When the clock should next follow the wall clock, given when the worker last heard
    /// from any input; never when turned off.
    pub(crate) fn due(&self, idle_since: Instant) -> Option<Instant> {
        if self.after.is_zero() {
            return None;
        }
        Some(self.next.unwrap_or(idle_since + self.after))
    }

    /// An input spoke: the clock is the events' again.
    pub(crate) fn heard(&mut self) {
        self.next = None;
    }

    /// Moves the engines' clock to the wall clock less the quiet period. True when that
    /// changed the state (to be written).
    pub(crate) fn follow(&mut self, engines: &mut Engines, emit: &mut impl FnMut(Record)) -> bool {
        self.next = Some(Instant::now() + TICK);
        let behind = i64::try_from(self.after.as_nanos()).unwrap_or(i64::MAX);
        engines.advance_to(crate::time::now_ns().saturating_sub(behind), emit)
    }
}

/// The latest month end an operator asked to close, ns since the epoch.
static CLOSE: LazyLock<watch::Sender<i64>> = LazyLock::new(|| watch::Sender::new(i64::MIN));

/// Asks every worker of this process to close everything up to `end_ns` (a month's end) now.
pub fn request_close(end_ns: i64) {
    CLOSE.send_if_modified(|end| {
        let later = end_ns > *end;
        if later {
            *end = end_ns;
        }
        later
    });
}

/// A worker's view of the close requests: `changed()` completes on a new one.
pub(crate) fn close_requests() -> watch::Receiver<i64> {
    CLOSE.subscribe()
}

/// Applies the latest close request to `engines`. True when that changed the state.
pub(crate) fn apply_close(
    requests: &mut watch::Receiver<i64>,
    engines: &mut Engines,
    emit: &mut impl FnMut(Record),
) -> bool {
    let end = *requests.borrow_and_update();
    end > i64::MIN && engines.advance_to(engines.closing(end), emit)
}
