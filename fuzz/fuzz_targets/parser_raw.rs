//! libFuzzer target `parser_raw`: runs `respgate::fuzz_checks::parser_raw` (what it checks is documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respgate::fuzz_checks::parser_raw(data));
