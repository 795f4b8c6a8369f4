//! libFuzzer target `namespace`: runs `respgate::fuzz_checks::namespace` (what it checks is documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respgate::fuzz_checks::namespace(data));
