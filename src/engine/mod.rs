//! Engines: pure, synchronous state machines over canonical events. No I/O and no clock
//! reads: event time comes in the events and "now" is a watermark the caller passes in, so
//! every run over the same input gives the same output, and state snapshots restore exactly.

//!
//! An engine depends on its own inputs alone: its section of the configuration (its own
//! types, defined here) and the `Catalog` of services, CIs and maintenance windows. The
//! service's configuration file (`crate::config`) composes and validates them from the top;
//! nothing under `engine` imports it, or the sources, sinks and metrics.

pub mod changelog;
pub mod correlate;
pub mod reorder;
pub mod sla;

use self::correlate::config::{CiConfig, ServiceConfig};
use self::correlate::maintenance::MaintenanceWindow;

/// What both engines know of the estate: the service catalogue with its CIs and their
/// dependencies (the CMDB excerpt), and the maintenance windows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog<'a> {
    /// The services, with their CIs and criticality.
    pub services: &'a [ServiceConfig],
    /// The CIs and what each depends on.
    pub cis: &'a [CiConfig],
    /// Maintenance windows: alerts inside are suppressed, SLA time inside is excluded.
    pub maintenance: &'a [MaintenanceWindow],
}
