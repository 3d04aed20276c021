//! Authentication of the HTTP API: `Authorization: Bearer <token>` against the configured
//! tokens, checked by a middleware in front of every route but the public ones (`/metrics`,
//! `/healthz`, `/readyz`), before routing and before any extractor, so that a request
//! without a valid token learns nothing (not whether a format, a month or a route exists,
//! nor which methods it takes) and gets 401 first. With `[server] open_trace_paths`, the
//! trace paths take bodies without `Authorization`; one that sends it is still checked.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{datadog_format, error, otlp_format, AppState, DATADOG_PATHS, INGEST_PREFIX, OTLP_PATH};
use crate::decode::Format;
use crate::metrics::{metrics, Rejection};

/// Why a request was not let in: the reason its 401 gives (never anything about the tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization` header.
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// An `Authorization` header of another scheme, or not of the form `Bearer <token>`.
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    Repeated,
    /// A bearer token that is none of the configured ones.
    #[error("invalid bearer token")]
    Invalid,
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case (RFC 7235 §2.1:
/// schemes are case-insensitive), whitespace, then one token (RFC 6750 §2.1: a token has no
/// whitespace); whitespace around the value is tolerated.
pub fn bearer_token(value: &[u8]) -> Result<&[u8], Denied> {
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .ok_or(Denied::Malformed)?;
    let (scheme, token) = (&value[..split], value[split..].trim_ascii_start());
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.iter().any(u8::is_ascii_whitespace) {
        return Err(Denied::Malformed);
    }
    Ok(token)
}

/// Checks the request's one `Authorization: Bearer` header against `tokens`. Every token is
/// compared, each in constant time, so the answer's timing tells neither a token's prefix
/// nor which token matched.
pub fn check(tokens: &[String], headers: &HeaderMap) -> Result<(), Denied> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Denied::Missing)?;
    if values.next().is_some() {
        return Err(Denied::Repeated);
    }
    let given = bearer_token(value.as_bytes())?;
    let matched = tokens
        .iter()
        .fold(false, |any, t| any | constant_time_eq(t.as_bytes(), given));
    if matched {
        Ok(())
    } else {
        Err(Denied::Invalid)
    }
}

/// Whether `given` is `secret`, in a time that depends on the secret's length only: every
/// byte of the secret is compared, whatever `given` is.
fn constant_time_eq(secret: &[u8], given: &[u8]) -> bool {
    let mut diff = secret.len() ^ given.len();
    for (i, s) in secret.iter().enumerate() {
        diff |= usize::from(s ^ given.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}

/// The middleware: lets the request on to the routes when it is authorized (or comes to an
/// open trace path without `Authorization`, or the server was configured with
/// `auth = "none"`), else answers 401. An ingest request's 401 is counted under its format,
/// as its handler would read it.
pub async fn authenticate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if state.config.server.auth == crate::config::Auth::None {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let format = format_of(path, request.headers());
    let trace_path = path == OTLP_PATH || DATADOG_PATHS.contains(&path) || format.is_some_and(Format::carries_traces);
    let open =
        state.config.server.open_trace_paths && trace_path && !request.headers().contains_key(header::AUTHORIZATION);
    if open {
        return next.run(request).await;
    }
    match check(&state.tokens, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            if let Some(format) = format {
                metrics().reject(format.name(), Rejection::Unauthorized);
            }
            unauthorized(denied)
        }
    }
}

/// The format a request to an ingest path carries, as its handler reads it (the path's
/// segment, or the standard trace paths' `Content-Type`); `None` for other paths.
fn format_of(path: &str, headers: &HeaderMap) -> Option<Format> {
    if path == OTLP_PATH {
        return otlp_format(headers).ok();
    }
    if DATADOG_PATHS.contains(&path) {
        return Some(datadog_format(headers));
    }
    path.strip_prefix(INGEST_PREFIX)?.parse().ok()
}

/// 401 with the reason and `WWW-Authenticate: Bearer` (RFC 6750 §3).
pub fn unauthorized(denied: Denied) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, denied.to_string());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_whitespace_around_is_tolerated() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "bEaReR s3cret",
            "  Bearer   s3cret  ",
            "Bearer\ts3cret",
        ] {
            assert_eq!(bearer_token(value.as_bytes()), Ok(&b"s3cret"[..]), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_and_malformed_values_are_refused() {
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Bearers3cret",
            "Basic czNjcmV0",
            "Token s3cret",
            "Bearer s3 cret",
            "s3cret",
        ] {
            assert_eq!(bearer_token(value.as_bytes()), Err(Denied::Malformed), "{value:?}");
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn a_request_passes_with_any_configured_token_only() {
        let tokens = vec!["first-token".to_string(), "second".to_string()];
        assert_eq!(check(&tokens, &headers(&["bearer second"])), Ok(()));
        assert_eq!(check(&tokens, &headers(&["Bearer first-token"])), Ok(()));
        assert_eq!(check(&tokens, &headers(&[])), Err(Denied::Missing));
        assert_eq!(check(&tokens, &headers(&["Bearer secon"])), Err(Denied::Invalid));
        assert_eq!(check(&tokens, &headers(&["Bearer second2"])), Err(Denied::Invalid));
        assert_eq!(check(&tokens, &headers(&["Basic c2Vjb25k"])), Err(Denied::Malformed));
        assert_eq!(
            check(&tokens, &headers(&["Bearer second", "Bearer second"])),
            Err(Denied::Repeated)
        );
        // No token configured: nobody passes.
        assert_eq!(check(&[], &headers(&["Bearer second"])), Err(Denied::Invalid));
    }

    #[test]
    fn token_comparison_needs_the_whole_token() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret\0"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b""));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
