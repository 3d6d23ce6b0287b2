#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (coffre_fuzz::target("pki_journal").expect("a target of coffre-fuzz").run)(data)
});
