//! `slaflow close`: asks a running service to close a month (`POST
//! /v1/months/{YYYY-MM}/close`) with one plain HTTP/1.1 request, so the binary needs no
//! HTTP client for it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// Sends the request to `server`; the service's answer on stdout when it accepted (202),
/// else an error with its status and body.
pub fn run(server: &str, month: &str, token: Option<String>) -> Result<ExitCode, String> {
    let token = token.or_else(first_env_token).unwrap_or_default();
    let mut stream = TcpStream::connect(server).map_err(|e| format!("cannot reach the service at {server}: {e}"))?;
    let request = format!(
        "POST /v1/months/{month}/close HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{server}: sending the request: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("{server}: reading the answer: {e}"))?;
    let (status, body) = status_and_body(&answer);
    if status == 202 {
        println!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("{server} answered {status}: {body}"))
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

/// An HTTP answer's status code (0 when it has none) and its trimmed body.
fn status_and_body(answer: &str) -> (u16, &str) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    (status, body)
}
