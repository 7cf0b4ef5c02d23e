//! The config file parser on any text: a config or `file:line:col` errors, never a panic.
#![no_main]

use earshot::config::Config;
use earshot_fuzz::{names_a_device, nowhere};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_device(text) {
        return;
    }
    if let Err(errors) = Config::parse("fuzz.toml", text, nowhere()) {
        assert!(!errors.0.is_empty(), "an error result without errors");
        let _ = errors.to_string();
    }
});
