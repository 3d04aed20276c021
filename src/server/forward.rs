//! Webhooks through Kafka: with `[kafka]` configured, a decoded webhook body is produced to
//! the first topic of its format, keyed by the service its events belong to, and the request
//! is answered once the broker has acknowledged it. The partition worker that owns the
//! service then processes it like any other message, so a service whose alerts come over
//! HTTP and whose latency comes over Kafka has one SLA state and one report.
//!
//! Routing follows the partitioning rule (`ARCHITECTURE.md`: key = service id):
//! - every event of the body belongs to one service: the body is produced as it came, keyed
//!   by that service;
//! - its events belong to several services: one message per service, holding that
//!   service's events as a canonical `EnvelopeBatch` (protobuf), marked with the
//!   `slaflow-format: protobuf` header so the worker decodes it as such;
//! - an event that names no service, CI or host (a Zabbix recovery line: only `p_eventid`;
//!   a PagerDuty resolve: only its dedup key) cannot be routed by key: it is produced to
//!   every partition of the topic. The worker holding the problem resolves it; the others
//!   find no such alert, count it as unmatched and store nothing.
//! - a body that does not decode is produced as it came, without a key, so that a worker
//!   dead-letters it with its topic, partition and offset; the sender still gets 400;
//! - a body some of whose items were rejected: its good items' events go as canonical
//!   batches by route, and its rejected items as one unkeyed message marked with their
//!   reasons (`slaflow-dead-letter` header), which the worker keeps as a dead letter.
//!
//! Every message carries the body's HTTP origin (`slaflow-endpoint`, `slaflow-remote-addr`
//! headers), so a dead letter a worker makes of it records where it was posted from.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::decode::{DeadPart, Format};
use crate::engine::correlate::topology::Cmdb;
use crate::model::{AlertStatus, Envelope, EnvelopeBatch, Event};
use crate::pipeline::HttpOrigin;
use crate::sources::kafka::{
    producer_config, KafkaConfig, DEAD_LETTER_HEADER, ENDPOINT_HEADER, FORMAT_HEADER, REMOTE_ADDR_HEADER,
};

/// A webhook body that could not be handed to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No `[[kafka.topics]]` entry has the body's format.
    #[error("no [[kafka.topics]] entry has format {0}: add one to ingest {0} bodies over HTTP")]
    NoTopic(&'static str),
    /// The producer or the broker refused or timed out.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Where an event's message goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// The partition of this key (a service id).
    Key(String),
    /// Every partition: the event names nothing to key it by.
    Everywhere,
}

/// The route of one event: the service it belongs to, as the correlation engine files it.
pub fn route(cmdb: &Cmdb, event: &Event) -> Route {
    let key = match event {
        Event::Alert(a) => match cmdb.alert_service(&a.service, &a.ci, &a.host) {
            Some(service) => service,
            // A trigger with nothing to file it under opens an incident of service
            // "unknown"; only its recovery (identity only) needs every partition.
            None if a.status == AlertStatus::Resolved as i32 => return Route::Everywhere,
            None => "unknown".to_string(),
        },
        Event::Sample(s) => s.service.clone(),
        Event::Batch(b) => b.service.clone(),
        Event::Change(c) => cmdb.service_of(&c.ci).unwrap_or(&c.ci).to_string(),
        Event::Maintenance(m) => match (m.service.as_str(), m.ci.as_str()) {
            ("", "") => return Route::Everywhere,
            ("", ci) => cmdb.service_of(ci).unwrap_or(ci).to_string(),
            (service, _) => service.to_string(),
        },
    };
    Route::Key(key)
}

/// A decoded body's events grouped by route, each group in the body's order.
fn group(cmdb: &Cmdb, events: Vec<Event>) -> BTreeMap<Route, Vec<Event>> {
    let mut groups: BTreeMap<Route, Vec<Event>> = BTreeMap::new();
    for event in events {
        groups.entry(route(cmdb, &event)).or_default().push(event);
    }
    groups
}

fn envelopes(events: Vec<Event>) -> Vec<u8> {
    EnvelopeBatch {
        events: events.into_iter().map(|e| Envelope { event: Some(e) }).collect(),
    }
    .encode_to_vec()
}

/// The headers naming a body's HTTP origin, which every message of it carries.
fn origin_headers(origin: &HttpOrigin) -> OwnedHeaders {
    let headers = OwnedHeaders::new().insert(Header {
        key: ENDPOINT_HEADER,
        value: Some(origin.endpoint.as_str()),
    });
    match &origin.remote_addr {
        Some(addr) => headers.insert(Header {
            key: REMOTE_ADDR_HEADER,
            value: Some(addr.as_str()),
        }),
        None => headers,
    }
}

/// Produces webhook bodies to their topics.
pub struct Forwarder {
    producer: FutureProducer,
    /// Format → the first configured topic of that format.
    topics: BTreeMap<&'static str, String>,
    cmdb: Cmdb,
    timeout: Duration,
    /// Partition counts, for the messages that go everywhere; refreshed after a minute.
    partitions: Mutex<BTreeMap<String, (i32, Instant)>>,
}

impl Forwarder {
    /// The producer for `kafka`'s brokers; routing by `cmdb`.
    pub fn new(kafka: &KafkaConfig, cmdb: Cmdb) -> Result<Forwarder, rdkafka::error::KafkaError> {
        let mut topics = BTreeMap::new();
        for t in &kafka.topics {
            topics.entry(t.format.name()).or_insert_with(|| t.name.clone());
        }
        Ok(Forwarder {
            producer: producer_config(kafka).create()?,
            topics,
            cmdb,
            timeout: kafka.produce_timeout,
            partitions: Mutex::new(BTreeMap::new()),
        })
    }

    /// The topic webhook bodies of `format` go to.
    pub fn topic(&self, format: Format) -> Result<&str, ForwardError> {
        self.topics
            .get(format.name())
            .map(String::as_str)
            .ok_or(ForwardError::NoTopic(format.name()))
    }

    /// Produces a decoded body (see the module's rules); returns once every message is
    /// acknowledged.
    pub async fn forward(
        &self,
        format: Format,
        body: &[u8],
        events: Vec<Event>,
        origin: &HttpOrigin,
    ) -> Result<(), ForwardError> {
        let topic = self.topic(format)?;
        let mut groups = group(&self.cmdb, events);
        if groups.len() == 1 {
            if let Some((route, _)) = groups.pop_first() {
                return self.send_routed(topic, &route, body, &origin_headers(origin)).await;
            }
        }
        self.send_groups(topic, groups, origin).await
    }

    /// Produces a body some of whose items were rejected: the good items' events as canonical
    /// batches by route, then each dead part (its rejected items, its refused events),
    /// unkeyed and marked with its reasons (`DEAD_LETTER_HEADER`) and format, for a worker
    /// to keep as a dead letter.
    pub async fn forward_partial(
        &self,
        format: Format,
        events: Vec<Event>,
        dead: &[DeadPart],
        origin: &HttpOrigin,
    ) -> Result<(), ForwardError> {
        let topic = self.topic(format)?;
        self.send_groups(topic, group(&self.cmdb, events), origin).await?;
        for part in dead {
            let headers = origin_headers(origin)
                .insert(Header {
                    key: DEAD_LETTER_HEADER,
                    value: Some(&part.reason),
                })
                .insert(Header {
                    key: FORMAT_HEADER,
                    value: Some(part.format.name()),
                });
            self.send(
                FutureRecord::<(), [u8]>::to(topic)
                    .payload(&part.payload)
                    .headers(headers),
            )
            .await?;
        }
        Ok(())
    }

    /// One canonical `EnvelopeBatch` message per route.
    async fn send_groups(
        &self,
        topic: &str,
        groups: BTreeMap<Route, Vec<Event>>,
        origin: &HttpOrigin,
    ) -> Result<(), ForwardError> {
        let header = origin_headers(origin).insert(Header {
            key: FORMAT_HEADER,
            value: Some(Format::Protobuf.name()),
        });
        for (route, events) in groups {
            self.send_routed(topic, &route, &envelopes(events), &header).await?;
        }
        Ok(())
    }

    /// Produces a body that did not decode, unkeyed, for a worker to dead-letter.
    pub async fn forward_rejected(&self, format: Format, body: &[u8], origin: &HttpOrigin) -> Result<(), ForwardError> {
        let topic = self.topic(format)?;
        let record = FutureRecord::<(), [u8]>::to(topic)
            .payload(body)
            .headers(origin_headers(origin));
        self.send(record).await
    }

    async fn send_routed(
        &self,
        topic: &str,
        route: &Route,
        payload: &[u8],
        headers: &OwnedHeaders,
    ) -> Result<(), ForwardError> {
        match route {
            Route::Key(key) => {
                let record = FutureRecord::to(topic).key(key.as_str()).payload(payload);
                self.send(record.headers(headers.clone())).await
            }
            Route::Everywhere => {
                for partition in 0..self.partition_count(topic).await? {
                    let record = FutureRecord::<str, [u8]>::to(topic)
                        .partition(partition)
                        .payload(payload);
                    self.send(record.headers(headers.clone())).await?;
                }
                Ok(())
            }
        }
    }

    async fn send<K: rdkafka::message::ToBytes + ?Sized>(
        &self,
        record: FutureRecord<'_, K, [u8]>,
    ) -> Result<(), ForwardError> {
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| ForwardError::Kafka(e))
    }

    /// The topic's partition count, from the broker's metadata (cached for a minute).
    async fn partition_count(&self, topic: &str) -> Result<i32, ForwardError> {
        if let Ok(cache) = self.partitions.lock() {
            if let Some((n, at)) = cache.get(topic) {
                if at.elapsed() < Duration::from_secs(60) {
                    return Ok(*n);
                }
            }
        }
        let client = self.producer.clone();
        let (name, timeout) = (topic.to_string(), self.timeout);
        // A blocking metadata request: off the runtime's workers.
        let count = tokio::task::spawn_blocking(move || {
            let metadata = client.client().fetch_metadata(Some(&name), timeout)?;
            Ok::<i32, rdkafka::error::KafkaError>(metadata.topics().first().map_or(0, |t| t.partitions().len() as i32))
        })
        .await
        .map_err(|_| ForwardError::Kafka(rdkafka::error::KafkaError::Canceled))??;
        if let Ok(mut cache) = self.partitions.lock() {
            cache.insert(topic.to_string(), (count, Instant::now()));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::correlate::config::{CiConfig, ServiceConfig};
    use crate::model::{AlertEvent, LatencySample, MaintenanceEvent};

    fn cmdb() -> Cmdb {
        let service: ServiceConfig = toml::from_str("id = \"webshop\"\ncis = [\"web-01\"]").unwrap();
        let ci: CiConfig = toml::from_str("id = \"web-01\"").unwrap();
        Cmdb::build(&[service], &[ci]).unwrap()
    }

    fn alert(service: &str, ci: &str, host: &str, status: AlertStatus) -> Event {
        Event::Alert(AlertEvent {
            source: "zabbix".into(),
            fingerprint: "42".into(),
            service: service.into(),
            ci: ci.into(),
            host: host.into(),
            status: status as i32,
            ..Default::default()
        })
    }

    fn key(k: &str) -> Route {
        Route::Key(k.into())
    }

    #[test]
    fn alerts_route_to_the_service_they_are_filed_under() {
        let cmdb = cmdb();
        assert_eq!(
            route(&cmdb, &alert("payments", "", "", AlertStatus::Firing)),
            key("payments")
        );
        // A CI or a host of a known service: that service.
        assert_eq!(
            route(&cmdb, &alert("", "web-01", "", AlertStatus::Firing)),
            key("webshop")
        );
        assert_eq!(
            route(&cmdb, &alert("", "", "web-01", AlertStatus::Firing)),
            key("webshop")
        );
        // An unknown CI is its own service, as the correlator files it.
        assert_eq!(route(&cmdb, &alert("", "db-9", "", AlertStatus::Firing)), key("db-9"));
        // Nothing to file it under: the trigger is "unknown", its recovery goes everywhere.
        assert_eq!(route(&cmdb, &alert("", "", "", AlertStatus::Firing)), key("unknown"));
        assert_eq!(
            route(&cmdb, &alert("", "", "", AlertStatus::Resolved)),
            Route::Everywhere
        );
    }

    #[test]
    fn samples_and_maintenance_route_to_their_service() {
        let cmdb = cmdb();
        let sample = Event::Sample(LatencySample {
            service: "search".into(),
            ..Default::default()
        });
        assert_eq!(route(&cmdb, &sample), key("search"));
        let window = |service: &str, ci: &str| {
            Event::Maintenance(MaintenanceEvent {
                service: service.into(),
                ci: ci.into(),
                ..Default::default()
            })
        };
        assert_eq!(route(&cmdb, &window("", "web-01")), key("webshop"));
        assert_eq!(route(&cmdb, &window("", "")), Route::Everywhere);
    }

    #[test]
    fn a_body_is_split_by_route_and_keeps_its_order_within_each() {
        let cmdb = cmdb();
        let events = vec![
            alert("a", "", "", AlertStatus::Firing),
            alert("b", "", "", AlertStatus::Firing),
            alert("", "", "", AlertStatus::Resolved),
            alert("a", "", "", AlertStatus::Resolved),
        ];
        let groups = group(&cmdb, events.clone());
        let routes: Vec<(&Route, usize)> = groups.iter().map(|(r, e)| (r, e.len())).collect();
        assert_eq!(routes, vec![(&key("a"), 2), (&key("b"), 1), (&Route::Everywhere, 1)]);
        assert_eq!(groups[&key("a")], vec![events[0].clone(), events[3].clone()]);
        // The canonical envelope decodes back to the same events.
        let bytes = envelopes(groups[&key("a")].clone());
        assert_eq!(crate::decode::protobuf::decode(&bytes).unwrap(), groups[&key("a")]);
    }
}
