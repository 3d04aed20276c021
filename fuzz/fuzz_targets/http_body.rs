//! Fuzz target `http_body`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("http_body", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| slaflow_fuzz::http_body(data));
