//! libFuzzer target `replies`: runs `respgate::fuzz_checks::replies` (what it checks is documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respgate::fuzz_checks::replies(data));
