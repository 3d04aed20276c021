//! slaflow: a stream processor for IT service management. Monitoring alerts and APM latency
//! arrive from sources, are decoded into canonical events (`model`), and flow into the
//! correlation and SLA engines; results go to sinks.
//!
//! Data path: `sources` → `decode` → engines → sinks.

pub mod config;
pub mod decode;
pub mod demo;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod server;
pub mod service;
pub mod sinks;
pub mod sources;
pub mod term;
pub mod time;
