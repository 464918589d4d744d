//! cargo fuzz run partner_edifact: see ../harness.rs for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::partner_edifact(data));
