//! Fuzz target `lines`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("lines", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| slaflow_fuzz::lines(data));
