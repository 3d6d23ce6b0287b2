#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (coffre_fuzz::target("manifest").expect("a target of coffre-fuzz").run)(data)
});
