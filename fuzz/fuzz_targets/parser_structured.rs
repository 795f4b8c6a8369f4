//! libFuzzer target `parser_structured`: runs `respgate::fuzz_checks::parser_structured` (what it checks is documented there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respgate::fuzz_checks::parser_structured(data));
