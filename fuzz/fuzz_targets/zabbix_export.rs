//! Fuzz target `zabbix_export`: the check of fuzz/src/lib.rs for it (`slaflow_fuzz::check("zabbix_export", _)`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slaflow::decode::Format;

fuzz_target!(|data: &[u8]| slaflow_fuzz::decoder(Format::ZabbixExport, data));
