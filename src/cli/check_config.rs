//! `slaflow check-config`: loads a configuration file the way the service does, prints its
//! warnings, and tries the `[server] listen` address, so that a file that passes starts.

use std::path::Path;
use std::process::ExitCode;

use slaflow::config::Config;

/// Loads `file` (and the OpenSLO files `openslo` as contracts) and, unless `no_bind`, binds its listen address for a moment; "FILE: ok" on
/// stdout and each warning on stderr, or the first error.
pub fn run(file: &Path, no_bind: bool, openslo: &[std::path::PathBuf]) -> Result<ExitCode, String> {
    let config = Config::load_with_openslo(file, openslo).map_err(|e| e.to_string())?;
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", file.display());
    }
    if !no_bind {
        try_listen(&config.server.listen).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    println!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Binds `listen` and lets it go again: an address of another host, a port taken or a
/// name that does not resolve is the error, with the address.
fn try_listen(listen: &str) -> Result<(), String> {
    std::net::TcpListener::bind(listen)
        .map(drop)
        .map_err(|e| format!("[server] listen = {listen:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_reported_with_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = try_listen(&addr).unwrap_err();
        assert!(
            err.contains(&addr) && err.to_lowercase().contains("address already in use"),
            "{err}"
        );
    }

    #[test]
    fn an_address_of_no_interface_here_is_reported() {
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
        let err = try_listen("192.0.2.1:9464").unwrap_err();
        assert!(
            err.contains("192.0.2.1:9464") && err.to_lowercase().contains("cannot assign requested address"),
            "{err}"
        );
    }

    #[test]
    fn a_free_port_passes() {
        assert_eq!(try_listen("127.0.0.1:0"), Ok(()));
    }
}
