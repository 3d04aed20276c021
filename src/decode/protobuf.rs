//! The canonical protobuf envelope (`proto/slaflow/v1/events.proto`) for producers that speak
//! slaflow's schema directly: one `Envelope`, or an `EnvelopeBatch` (field 16, so the two are
//! told apart without a header). Values are validated as strictly as the JSON decoders'.

use prost::Message;

use super::{DecodeError, Format, Location};
use crate::model::{AlertStatus, Envelope, EnvelopeBatch, Event, MaintenanceAction, Outcome};

/// Decodes one Envelope or one EnvelopeBatch.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let batch = EnvelopeBatch::decode(bytes).map_err(wire_error)?;
    let envelopes = if batch.events.is_empty() {
        // Not a batch (a batch's field 16 would have been read): a single envelope.
        vec![Envelope::decode(bytes).map_err(wire_error)?]
    } else {
        batch.events
    };
    let many = envelopes.len() > 1;
    let prefix = |i: usize| if many { format!("events[{i}].") } else { String::new() };
    let mut out = Vec::with_capacity(envelopes.len());
    for (i, envelope) in envelopes.into_iter().enumerate() {
        let event = envelope.event.ok_or_else(|| {
            invalid(format!("{}event", prefix(i)), "expected one of alert, sample, batch, change, maintenance (fields 1..5) or a batch (field 16), found none")
        })?;
        validate(&event).map_err(|(field, message)| invalid(format!("{}{field}", prefix(i)), message))?;
        out.push(event);
    }
    Ok(out)
}

fn wire_error(err: prost::DecodeError) -> DecodeError {
    DecodeError {
        format: Format::Protobuf,
        location: Location::Record,
        field: String::new(),
        // prost names the message and field it was reading ("LatencyBatch.times_ns: ...").
        message: format!("invalid protobuf: {err}"),
    }
}

fn invalid(field: String, message: impl Into<String>) -> DecodeError {
    DecodeError {
        format: Format::Protobuf,
        location: Location::Record,
        field,
        message: message.into(),
    }
}

fn validate(event: &Event) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    match event {
        Event::Alert(a) => {
            if !matches!(AlertStatus::try_from(a.status), Ok(s) if s != AlertStatus::Unspecified) {
                return fail(
                    "alert.status",
                    format!("expected firing(1), acknowledged(2) or resolved(3), found {}", a.status),
                );
            }
            if a.severity > 5 {
                return fail("alert.severity", format!("expected 0..5, found {}", a.severity));
            }
        }
        Event::Sample(s) => {
            if s.duration_ns < 0 {
                return fail("sample.duration_ns", format!("expected >= 0, found {}", s.duration_ns));
            }
            if Outcome::try_from(s.outcome).is_err() {
                return fail("sample.outcome", format!("expected 0..2, found {}", s.outcome));
            }
        }
        Event::Batch(b) => {
            let n = b.times_ns.len();
            if b.durations_ns.len() != n {
                return fail(
                    "batch.durations_ns",
                    format!("expected {n} durations, one per time, found {}", b.durations_ns.len()),
                );
            }
            if !b.errors.is_empty() && b.errors.len() != n {
                return fail(
                    "batch.errors",
                    format!("expected none or {n}, found {}", b.errors.len()),
                );
            }
            if !b.status_codes.is_empty() && b.status_codes.len() != n {
                return fail(
                    "batch.status_codes",
                    format!("expected none or {n}, found {}", b.status_codes.len()),
                );
            }
            if let Some(i) = b.durations_ns.iter().position(|&d| d < 0) {
                return fail(
                    "batch.durations_ns",
                    format!("expected >= 0, found {} at index {i}", b.durations_ns[i]),
                );
            }
        }
        Event::Change(c) => {
            if c.ci.is_empty() {
                return fail(
                    "change.ci",
                    "expected the CI the change was made to, found an empty string".into(),
                );
            }
        }
        Event::Maintenance(m) => {
            if MaintenanceAction::try_from(m.action).is_err() {
                return fail("maintenance.action", format!("expected 0..3, found {}", m.action));
            }
            if m.end_ns < m.start_ns {
                return fail(
                    "maintenance.end_ns",
                    format!("expected an end >= the start {}, found {}", m.start_ns, m.end_ns),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertEvent, LatencyBatch};

    fn batch(n: usize) -> LatencyBatch {
        LatencyBatch {
            service: "orders".into(),
            operation: "POST /orders".into(),
            times_ns: (0..n as i64).collect(),
            durations_ns: vec![5; n],
            errors: vec![],
            status_codes: vec![],
        }
    }

    #[test]
    fn single_and_batched() {
        let alert = Event::Alert(AlertEvent {
            status: AlertStatus::Firing as i32,
            ..Default::default()
        });
        let single = Envelope {
            event: Some(alert.clone()),
        }
        .encode_to_vec();
        assert_eq!(decode(&single).unwrap(), vec![alert.clone()]);

        let events = vec![alert.clone(), Event::Batch(batch(3))];
        let bytes = EnvelopeBatch {
            events: events.iter().cloned().map(|e| Envelope { event: Some(e) }).collect(),
        }
        .encode_to_vec();
        assert_eq!(decode(&bytes).unwrap(), events);
    }

    #[test]
    fn invalid_values_name_the_field() {
        let mut b = batch(3);
        b.durations_ns.pop();
        let bytes = Envelope {
            event: Some(Event::Batch(b)),
        }
        .encode_to_vec();
        assert_eq!(decode(&bytes).unwrap_err().field, "batch.durations_ns");
        let bytes = Envelope {
            event: Some(Event::Alert(AlertEvent::default())),
        }
        .encode_to_vec();
        assert_eq!(decode(&bytes).unwrap_err().field, "alert.status");
        assert_eq!(decode(&[]).unwrap_err().field, "event");
        let err = decode(&[0x0a, 0xff]).unwrap_err();
        assert!(err.message.starts_with("invalid protobuf"), "{}", err.message);
    }
}
