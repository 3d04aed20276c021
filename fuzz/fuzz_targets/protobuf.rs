//! Fuzz target `protobuf`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("protobuf", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slaflow::decode::Format;

fuzz_target!(|data: &[u8]| slaflow_fuzz::decoder(Format::Protobuf, data));
