//! Sources: where records come from, before decoding. Files (replay) live here; Kafka and
//! HTTP push join them as the service grows.

pub mod file;
pub mod kafka;
