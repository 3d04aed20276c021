//! The error bodies of the HTTP API: every error answer is JSON,
//! `{"error": "<status, snake_case>", "reason": "<what was wrong>"}`, including what axum
//! itself would answer in plain text or with no body (an unknown route, a method the route
//! does not take, a path or query string its extractor refuses). The OTLP path's own error
//! body, a `google.rpc.Status`, is `otlp.rs`'s.

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// The one error answer: `status`, with a JSON body naming it and `reason`.
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": code(status), "reason": reason.into() });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

/// The status as a stable word: its reason phrase in snake case (`payload_too_large`).
fn code(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

/// The fallback for a path no route has.
pub async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
}

/// The fallback for a method the route does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_in_snake_case() {
        assert_eq!(code(StatusCode::UNAUTHORIZED), "unauthorized");
        assert_eq!(code(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
        assert_eq!(code(StatusCode::UNSUPPORTED_MEDIA_TYPE), "unsupported_media_type");
        assert_eq!(code(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
        assert_eq!(code(StatusCode::from_u16(599).unwrap()), "error");
    }
}
