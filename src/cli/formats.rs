//! `slaflow formats`: the input formats, one a line with its description.

use std::process::ExitCode;

use slaflow::decode::Format;

/// Prints every format's name and description.
pub fn run() -> Result<ExitCode, String> {
    for format in Format::ALL {
        println!("{:<16} {}", format.name(), format.description());
    }
    Ok(ExitCode::SUCCESS)
}
