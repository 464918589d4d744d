//! cargo fuzz run authorization: see ../harness.rs for what it checks.
#![no_main]

#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::authorization(data));
