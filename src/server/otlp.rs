//! OTLP/HTTP answers (the OTLP specification, "OTLP/HTTP Response"): a success is an
//! `ExportTraceServiceResponse`, with `partial_success` when spans were rejected; a request
//! of which nothing could be kept is 400 with a `google.rpc.Status`. Both are encoded as
//! the request was (protobuf or JSON).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use prost::Message;

/// `google.rpc.Status`, the error body of OTLP/HTTP (only the fields slaflow sets).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's INVALID_ARGUMENT: the data cannot be accepted as it is (do not retry).
const INVALID_ARGUMENT: i32 = 3;

fn encoded(json: bool, status: StatusCode, proto: Vec<u8>, text: serde_json::Value) -> Response {
    if json {
        (status, [(header::CONTENT_TYPE, "application/json")], text.to_string()).into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "application/x-protobuf")], proto).into_response()
    }
}

/// 200: the request was taken; `rejected` spans were not, for `reasons`.
pub fn response(json: bool, rejected: usize, reasons: String) -> Response {
    if rejected == 0 {
        return encoded(
            json,
            StatusCode::OK,
            ExportTraceServiceResponse::default().encode_to_vec(),
            serde_json::json!({}),
        );
    }
    let partial = ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: reasons,
    };
    // The proto3 JSON mapping: camelCase names, 64-bit integers as strings.
    let text = serde_json::json!({
        "partialSuccess": { "rejectedSpans": partial.rejected_spans.to_string(), "errorMessage": partial.error_message }
    });
    let proto = ExportTraceServiceResponse {
        partial_success: Some(partial),
    };
    encoded(json, StatusCode::OK, proto.encode_to_vec(), text)
}

/// 400: nothing of the request could be kept, for `reason`.
pub fn status(json: bool, reason: String) -> Response {
    let text = serde_json::json!({ "code": INVALID_ARGUMENT, "message": reason });
    let proto = RpcStatus {
        code: INVALID_ARGUMENT,
        message: reason,
    };
    encoded(json, StatusCode::BAD_REQUEST, proto.encode_to_vec(), text)
}
