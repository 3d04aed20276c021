//! The one plain HTTP/1.1 request the subcommands that talk to a running service send
//! (`close`, `dead-letters replay`), so the binary needs no HTTP client crate: `Connection:
//! close`, a `Content-Length` body, and the answer read to its end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a request may wait for the service's answer (a webhook is answered once its
/// batch is stored).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer: its status code and its trimmed body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `POST path` to `server` (host:port) with the bearer token, `headers` and `body`.
pub fn post(server: &str, path: &str, token: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(server).map_err(|e| format!("cannot reach the service at {server}: {e}"))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| format!("{server}: {e}"))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("{server}: sending the request: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{server}: reading the answer: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (status, body) = status_and_body(&text);
    Ok(Answer {
        status,
        body: body.to_string(),
    })
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

/// `host:port` of a service URL (`http://host:port`, a trailing `/` allowed, or `host:port`).
pub fn server_of(url: &str) -> Result<String, String> {
    let rest = match url.split_once("://") {
        None => url,
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("{url}: only http:// is supported, not {scheme}://")),
    };
    let server = rest.trim_end_matches('/');
    if server.is_empty() || server.contains('/') {
        return Err(format!("{url}: expected http://host:port"));
    }
    Ok(server.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(server_of("http://127.0.0.1:9464/").unwrap(), "127.0.0.1:9464");
        assert_eq!(server_of("slaflow:9464").unwrap(), "slaflow:9464");
        assert!(server_of("https://slaflow:9464").unwrap_err().contains("only http://"));
        assert!(server_of("http://slaflow:9464/v1").is_err());
    }

    #[test]
    fn status_and_body_of_an_answer() {
        let (status, body) = status_and_body("HTTP/1.1 202 Accepted\r\ncontent-length: 3\r\n\r\n{}\n");
        assert_eq!((status, body), (202, "{}"));
        assert_eq!(status_and_body("garbage").0, 0);
    }
}
