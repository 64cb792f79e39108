//! Fuzz target: `tccc_sidecar::fuzzing::authorization` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tccc_sidecar::fuzzing::authorization(data);
});
