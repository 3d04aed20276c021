//! Fuzzes the `datadog-msgpack` decoder: any input must give Ok or a DecodeError, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slaflow::decode::{Decoders, Format};

fuzz_target!(|data: &[u8]| {
    let _ = Decoders::default().decode(Format::DatadogMsgpack, data);
});
