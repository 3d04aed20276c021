//! Compiles `proto/` with prost. protox parses the .proto files in Rust, so a fresh machine
//! needs no system `protoc`. Also makes a new or changed migration rebuild the crate:
//! refinery embeds `migrations/` at compile time, which cargo does not otherwise track.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/slaflow/v1/events.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile([proto], ["proto"])?;

    let mut config = prost_build::Config::new();
    // Ordered maps keep JSON output and snapshots deterministic.
    config.btree_map(["."]);
    config.type_attribute(".slaflow.v1", "#[derive(serde::Serialize, serde::Deserialize)]");
    // JSON lines carry `"type": "alert"` next to the event's own fields.
    config.type_attribute(
        ".slaflow.v1.Envelope.event",
        "#[serde(tag = \"type\", rename_all = \"snake_case\")]",
    );
    // Enum fields are i32 on the wire; in JSON they are their lower-case names.
    for (field, module) in [
        ("AlertEvent.status", "alert_status"),
        ("LatencySample.outcome", "outcome"),
        ("MaintenanceEvent.action", "maintenance_action"),
    ] {
        config.field_attribute(
            format!(".slaflow.v1.{field}"),
            format!("#[serde(with = \"crate::model::serde_enum::{module}\")]"),
        );
    }
    // A sample's role is optional in JSON: absent means unspecified (a request), so
    // canonical lines written before roles existed still read.
    config.field_attribute(
        ".slaflow.v1.LatencySample.role",
        "#[serde(default, skip_serializing_if = \"crate::model::serde_enum::is_unspecified\", with = \"crate::model::serde_enum::span_role\")]",
    );
    // An alert's start is written only when it differs from its time (a long-firing alert).
    config.field_attribute(
        ".slaflow.v1.AlertEvent.starts_at_ns",
        "#[serde(default, skip_serializing_if = \"crate::model::is_zero\")]",
    );
    config.compile_fds(descriptors)?;
    Ok(())
}
