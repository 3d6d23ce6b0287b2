#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (coffre_fuzz::target("atcacert").expect("a target of coffre-fuzz").run)(data)
});
