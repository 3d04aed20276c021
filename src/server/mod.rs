//! The HTTP server: one port for `/metrics`, `/healthz`, `/readyz`, webhook ingest and the
//! finance report API. Handlers stay thin: ingest decodes and hands bodies on — to the
//! ingest worker (the engines and sink path every input takes), or, with `[kafka]`, to the
//! body's Kafka topic (`forward.rs`); reports read the store. Every path but the metrics
//! and the probes is behind the token check (`auth.rs`); every error answer is JSON with a
//! reason (`errors.rs`).

mod auth;
pub mod close;
pub mod encoding;
mod errors;
pub mod forward;
mod otlp;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::config::Config;
use crate::decode::admit::TimeBounds;
use crate::decode::{DeadPart, Decoders, Format};
use crate::metrics::{metrics, Rejection};
use crate::model::Event;
use crate::pipeline::{HttpOrigin, Ingest};
use crate::report::{render_with, ReportFormat};
use crate::sinks::{SinkError, Store};
use errors::error;
use forward::{ForwardError, Forwarder};

/// What the handlers share.
pub struct AppState {
    config: Arc<Config>,
    decoders: Decoders,
    /// The event-time bounds each body's events are judged by, against its receive time.
    bounds: TimeBounds,
    tokens: Vec<String>,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    intake: Intake,
    /// The report API's and readiness probe's store connection, opened on first use and
    /// again after an error.
    store: Mutex<Option<Store>>,
}

impl AppState {
    /// Runs `query` on the shared store connection, opening it first if needed; an error
    /// drops the connection so that the next request opens a fresh one.
    async fn with_store<T>(
        &self,
        query: impl for<'s> FnOnce(
            &'s Store,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, SinkError>> + Send + 's>>,
    ) -> Result<T, SinkError> {
        let mut store = self.store.lock().await;
        if store.is_none() {
            *store = Some(Store::open(&self.config).await?);
        }
        let Some(open) = store.as_ref() else {
            return Err(SinkError::Unavailable("store not open".into()));
        };
        let result = query(open).await;
        if result.is_err() {
            *store = None;
        }
        result
    }
}

/// Where decoded webhook bodies go.
pub enum Intake {
    /// The ingest worker's queue (no `[kafka]`): answered once the batch is stored.
    Worker(mpsc::Sender<Ingest>),
    /// The body's Kafka topic: answered once the broker has acknowledged it.
    Kafka(Forwarder),
}

impl AppState {
    /// `ready` answers /readyz; `intake` takes the webhook bodies.
    pub fn new(config: Arc<Config>, ready: Box<dyn Fn() -> bool + Send + Sync>, intake: Intake) -> AppState {
        AppState {
            bounds: config.decoders.time_bounds(config.correlate.allowed_lateness),
            decoders: Decoders::new(config.decoders.clone()),
            tokens: config.server.effective_tokens(),
            config,
            ready,
            intake,
            store: Mutex::new(None),
        }
    }
}

/// The start of the generic ingest path, `/v1/ingest/{format}`.
const INGEST_PREFIX: &str = "/v1/ingest/";
/// OTLP/HTTP's trace path.
const OTLP_PATH: &str = "/v1/traces";
/// The Datadog agent's trace paths.
const DATADOG_PATHS: [&str; 2] = ["/v0.4/traces", "/v0.5/traces"];

/// The routes: the public ones (metrics and probes), then every other path behind the
/// token check (`auth.rs`). The check wraps the guarded routes as a whole rather than each
/// route, so that it runs before routing: a request without a valid token gets 401 whatever
/// it asks for, never a 404, a 405 with an `Allow` header, or an extractor's 400.
pub fn router(state: Arc<AppState>) -> Router {
    let guarded = Router::new()
        .route(&format!("{INGEST_PREFIX}{{format}}"), post(ingest))
        .route(OTLP_PATH, post(otlp_traces))
        .route(DATADOG_PATHS[0], post(datadog_traces).put(datadog_traces))
        .route(DATADOG_PATHS[1], post(datadog_traces).put(datadog_traces))
        .route("/v1/reports/{month}", get(reports))
        .route("/v1/months/{month}/close", post(close::close_month))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .with_state(state.clone());
    let checked = Router::new()
        .fallback_service(guarded)
        .layer(from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(errors::method_not_allowed)
        .fallback_service(checked)
        .with_state(state)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer's address, which a dead letter of a body records.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A body's origin, from the request: the path it was posted to and the peer's address (the
/// TCP peer: behind a proxy, the proxy's).
impl<S: Send + Sync> FromRequestParts<S> for HttpOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<HttpOrigin, Self::Rejection> {
        Ok(HttpOrigin {
            endpoint: parts.uri.path().to_string(),
            remote_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string()),
        })
    }
}

/// Marks a body re-submitted by `slaflow dead-letters replay` (the value: the dead letter's
/// id): when none of it can be kept, the service answers 400 without storing it as a new
/// dead letter, since the replaying command keeps the original.
pub const REPLAY_HEADER: &str = "slaflow-replay";

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let m = metrics();
    m.ready.set(i64::from((state.ready)()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        m.render(),
    )
        .into_response()
}

/// Ready: the workers say so (partitions assigned, last write stored) and the store answers
/// now (an idle webhook-only service has written nothing for a while). A 503's reason names
/// the part that is not ready, not the store's error: the probe is public.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if !(state.ready)() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: a worker has no partitions yet or its last store access failed",
        );
    }
    if state.with_store(|s| Box::pin(s.ping())).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not ready: the store does not answer");
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// What became of a body that was read, decoded and handed on.
enum Taken {
    /// Events were kept; `rejected` items were not, for `reasons` (one per line).
    Accepted {
        accepted: usize,
        rejected: usize,
        reasons: String,
    },
    /// Nothing was kept (the body is a dead letter), for this reason.
    Rejected(String),
}

/// `POST /v1/ingest/{format}`: 200 once the body's events are stored (or, with `[kafka]`,
/// acknowledged by the broker), with a partial success when some items were rejected; 400
/// with the reason when nothing of it could be kept (it is a dead letter); 404 (unknown
/// format, or no topic for it), 413, 415 (an unknown `Content-Encoding`).
async fn ingest(
    State(state): State<Arc<AppState>>,
    origin: HttpOrigin,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = match path {
        Ok(Path(format)) => format,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let Ok(format) = format.parse::<Format>() else {
        let known: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown format `{format}`; one of: {}", known.join(", ")),
        );
    };
    match take(&state, format, origin, &headers, body).await {
        Err(response) => response,
        Ok(Taken::Rejected(reason)) => error(StatusCode::BAD_REQUEST, reason),
        Ok(Taken::Accepted {
            accepted,
            rejected,
            reasons,
        }) => {
            let mut body = serde_json::json!({ "accepted": accepted });
            if rejected > 0 {
                body["partial_success"] = serde_json::json!({ "rejected": rejected, "error_message": reasons });
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{body}\n"),
            )
                .into_response()
        }
    }
}

/// Reads, decodes and hands on one body of `format` (the part every ingest endpoint shares;
/// the token was checked before, `auth.rs`); `Err` is the answer for a body refused before
/// decoding.
async fn take(
    state: &AppState,
    format: Format,
    origin: HttpOrigin,
    headers: &HeaderMap,
    body: Body,
) -> Result<Taken, Response> {
    let m = metrics();
    if let Intake::Kafka(forwarder) = &state.intake {
        if let Err(e) = forwarder.topic(format) {
            return Err(error(StatusCode::NOT_FOUND, e.to_string()));
        }
    }
    let bytes = read_body(state, format, headers, body).await?;
    let received_ns = crate::time::now_ns();
    let mut decoded = state.decoders.decode(format, &bytes);
    if let Ok(d) = &mut decoded {
        state.bounds.judge(d, received_ns);
    }
    m.count_decode(format.name(), &decoded);
    let dead = crate::decode::dead_parts(format, &bytes, &decoded);
    let (events, taken) = match decoded {
        Err(e) => (Vec::new(), Taken::Rejected(e.to_string())),
        Ok(d) if d.kept_nothing() => (Vec::new(), Taken::Rejected(d.reasons())),
        Ok(d) => {
            m.ingested
                .with_label_values(&[format.name(), "http"])
                .inc_by(d.events.len() as u64);
            let taken = Taken::Accepted {
                accepted: d.events.len(),
                rejected: d.rejected_count(),
                reasons: d.reasons(),
            };
            (d.events, taken)
        }
    };
    if matches!(taken, Taken::Rejected(_)) && headers.contains_key(REPLAY_HEADER) {
        return Ok(taken);
    }
    match &state.intake {
        Intake::Worker(queue) => to_worker(queue, format, origin, received_ns, events, dead).await?,
        Intake::Kafka(forwarder) => to_kafka(forwarder, format, &bytes, events, dead, &origin).await?,
    }
    Ok(taken)
}

/// `POST /v1/traces`: OTLP/HTTP as the specification has it, so that an OpenTelemetry
/// Collector's `otlphttp` exporter (or an SDK) points at slaflow unchanged. The body is an
/// `ExportTraceServiceRequest` in protobuf (`application/x-protobuf`) or JSON
/// (`application/json`), optionally gzip- or zstd-compressed; the answer is an
/// `ExportTraceServiceResponse` in the same encoding, with `partial_success` when spans
/// were rejected, or 400 with a `google.rpc.Status` when none could be kept.
async fn otlp_traces(
    State(state): State<Arc<AppState>>,
    origin: HttpOrigin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = match otlp_format(&headers) {
        Ok(format) => format,
        Err(reason) => return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason),
    };
    let json = format == Format::OtlpJson;
    match take(&state, format, origin, &headers, body).await {
        Err(response) => response,
        Ok(Taken::Rejected(reason)) => otlp::status(json, reason),
        Ok(Taken::Accepted { rejected, reasons, .. }) => otlp::response(json, rejected, reasons),
    }
}

/// The OTLP format of a `/v1/traces` request, by its `Content-Type`; `Err` is the 415's
/// reason.
fn otlp_format(headers: &HeaderMap) -> Result<Format, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        Ok(Format::OtlpJson)
    } else if content_type.starts_with("application/x-protobuf") {
        Ok(Format::OtlpProto)
    } else {
        Err(format!(
            "Content-Type {content_type:?}: expected application/x-protobuf or application/json"
        ))
    }
}

/// The format of a Datadog agent path's request: JSON by its `Content-Type`, else
/// MessagePack (every tracer's default).
fn datadog_format(headers: &HeaderMap) -> Format {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        Format::DatadogApm
    } else {
        Format::DatadogMsgpack
    }
}

/// `PUT`/`POST /v0.4/traces` and `/v0.5/traces`: the Datadog agent's trace intake, so a
/// ddtrace library sends to slaflow with `DD_TRACE_AGENT_URL` alone. MessagePack bodies
/// (`application/msgpack`, every tracer's default) are `datadog-msgpack`, JSON ones
/// `datadog-apm`. Answered as the agent does (`rate_by_service`), or 400 with the reason.
/// Tracers send no token: with `[server] open_trace_paths` these paths take bodies without
/// one.
async fn datadog_traces(
    State(state): State<Arc<AppState>>,
    origin: HttpOrigin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match take(&state, datadog_format(&headers), origin, &headers, body).await {
        Err(response) => response,
        Ok(Taken::Rejected(reason)) => error(StatusCode::BAD_REQUEST, reason),
        Ok(Taken::Accepted { .. }) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"rate_by_service\":{}}\n",
        )
            .into_response(),
    }
}

/// The body, within its format's limit (declared, streamed, and once decompressed), or the
/// 413 (415 for an unknown `Content-Encoding`) answer.
async fn read_body(state: &AppState, format: Format, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Response> {
    let server = &state.config.server;
    let (limit, setting) = if format.carries_traces() {
        (server.max_trace_body_bytes, "max_trace_body_bytes")
    } else {
        (server.max_body_bytes, "max_body_bytes")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        metrics().reject(format.name(), Rejection::TooLarge);
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{format} body larger than {setting} = {limit}"),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let raw = to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding::decode(encoding, &raw, limit) {
        Ok(bytes) => Ok(bytes),
        Err(encoding::Error::TooLarge) => Err(too_large()),
        Err(e @ encoding::Error::Unsupported(_)) => Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())),
        Err(e @ encoding::Error::Corrupt(..)) => {
            metrics().reject(format.name(), Rejection::Decode);
            Err(error(StatusCode::BAD_REQUEST, e.to_string()))
        }
    }
}

/// Hands a body's events and dead part to the ingest worker and waits for its batch to be
/// stored.
async fn to_worker(
    queue: &mpsc::Sender<Ingest>,
    format: Format,
    origin: HttpOrigin,
    received_ns: i64,
    events: Vec<Event>,
    dead: Vec<DeadPart>,
) -> Result<(), Response> {
    let (done, stored) = oneshot::channel();
    let request = Ingest {
        format,
        origin,
        received_ns,
        events,
        dead,
        done,
    };
    if queue.send(request).await.is_err() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    match stored.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, format!("not stored: {e}"))),
        Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "the ingest worker stopped")),
    }
}

/// Produces a body to its topic and waits for the broker's acknowledgement: as it came when
/// all of it decoded; as it came, for a worker to dead-letter, when none of it did; its good
/// events and its rejected items apart when some were rejected.
async fn to_kafka(
    forwarder: &Forwarder,
    format: Format,
    body: &[u8],
    events: Vec<Event>,
    dead: Vec<DeadPart>,
    origin: &HttpOrigin,
) -> Result<(), Response> {
    let produced = match dead.first() {
        None => forwarder.forward(format, body, events, origin).await,
        Some(_) if events.is_empty() => forwarder.forward_rejected(format, body, origin).await,
        Some(_) => forwarder.forward_partial(format, events, &dead, origin).await,
    };
    produced.map_err(|e| match e {
        ForwardError::NoTopic(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        ForwardError::Kafka(_) => error(StatusCode::SERVICE_UNAVAILABLE, format!("not produced: {e}")),
    })
}

/// Query of the report API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    service: Option<String>,
    format: Option<String>,
    /// A version of the final reports (1 the close's; each correction the next); the
    /// latest without.
    version: Option<u32>,
}

/// `GET /v1/reports/{YYYY-MM}?service=…&format=json|csv|credits-csv|html`: the month's
/// stored reports (`csv`: the objectives; `credits-csv`: the credit once per service;
/// `html`: one page with charts, the month's warnings and breaches listed); `version=N`: that
/// version of the final reports, every one being kept.
async fn reports(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Response {
    let (month, query) = match (path, query) {
        (Ok(Path(month)), Ok(Query(query))) => (month, query),
        (Err(rejection), _) => return error(rejection.status(), rejection.body_text()),
        (_, Err(rejection)) => return error(rejection.status(), rejection.body_text()),
    };
    if !valid_month(&month) {
        return error(StatusCode::BAD_REQUEST, format!("`{month}` is not a month (YYYY-MM)"));
    }
    let (format, content_type) = match query.format.as_deref() {
        None | Some("json") => (ReportFormat::Json, "application/json"),
        Some("csv") => (ReportFormat::Csv, "text/csv; charset=utf-8"),
        Some("credits-csv") => (ReportFormat::CreditsCsv, "text/csv; charset=utf-8"),
        Some("html") => (ReportFormat::Html, "text/html; charset=utf-8"),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("format `{other}`: json, csv, credits-csv or html"),
            )
        }
    };
    let (period, service) = (month.clone(), query.service.clone());
    let html = format == ReportFormat::Html;
    let version = query.version;
    let found = state
        .with_store(|s| {
            Box::pin(async move {
                let reports = match version {
                    Some(v) => s.report_version(&period, service.as_deref(), v).await?,
                    None => s.reports(&period, service.as_deref()).await?,
                };
                // The page lists the month's warnings and breaches too.
                let findings = if html {
                    s.findings(&period, service.as_deref()).await?
                } else {
                    Vec::new()
                };
                Ok((reports, findings))
            })
        })
        .await;
    match found {
        Ok((reports, _)) if reports.is_empty() => error(
            StatusCode::NOT_FOUND,
            format!(
                "no report for {month}{}{}",
                query.service.map(|s| format!(" and service {s}")).unwrap_or_default(),
                query.version.map(|v| format!(" in version {v}")).unwrap_or_default()
            ),
        ),
        Ok((reports, findings)) => (
            [(header::CONTENT_TYPE, content_type)],
            render_with(&reports, &findings, format),
        )
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    }
}

fn valid_month(month: &str) -> bool {
    let b = month.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(month[5..].parse::<u8>(), Ok(1..=12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_yyyy_mm() {
        assert!(valid_month("2026-03"));
        assert!(!valid_month("2026-13"));
        assert!(!valid_month("2026-3"));
        assert!(!valid_month("2026/03"));
    }
}
