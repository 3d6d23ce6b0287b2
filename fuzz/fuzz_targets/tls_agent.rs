#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (coffre_fuzz::target("tls_agent").expect("a target of coffre-fuzz").run)(data)
});
