//! Fuzz target `datadog_apm_diff`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("datadog_apm_diff", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| slaflow_fuzz::datadog_apm_diff(data));
