//! Engines: pure, synchronous state machines over canonical events. No I/O and no clock
//! reads: event time comes in the events and "now" is a watermark the caller passes in, so
//! every run over the same input gives the same output, and state snapshots restore exactly.

pub mod correlate;
pub mod reorder;
pub mod sla;
