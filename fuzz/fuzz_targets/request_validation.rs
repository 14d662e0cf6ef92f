#![no_main]

// The body lives in the library (`membership_service::fuzzing`) so the committed corpus also
// replays in the ordinary test run.
libfuzzer_sys::fuzz_target!(|data: &[u8]| membership_service::fuzzing::request_validation(data));
