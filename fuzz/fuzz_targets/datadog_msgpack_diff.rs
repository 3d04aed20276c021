//! Fuzz target `datadog_msgpack_diff`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("datadog_msgpack_diff", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| slaflow_fuzz::datadog_msgpack_diff(data));
