//! `slaflow close`: asks a running service to close a month (`POST
//! /v1/months/{YYYY-MM}/close`) with one plain HTTP/1.1 request (`http.rs`).

use std::process::ExitCode;

use super::http;

/// Sends the request to `server`; the service's answer on stdout when it accepted (202),
/// else an error with its status and body.
pub fn run(server: &str, month: &str, token: Option<String>) -> Result<ExitCode, String> {
    let token = token.or_else(first_env_token).unwrap_or_default();
    let answer = http::post(server, &format!("/v1/months/{month}/close"), &token, &[], b"")?;
    if answer.status == 202 {
        println!("{}", answer.body);
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("{server} answered {}: {}", answer.status, answer.body))
    }
}

/// The first of SLAFLOW_API_TOKENS, the service's own list, when `--token` is not given.
fn first_env_token() -> Option<String> {
    std::env::var("SLAFLOW_API_TOKENS")
        .ok()?
        .split(',')
        .next()
        .map(|t| t.trim().to_string())
}
