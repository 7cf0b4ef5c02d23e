//! The routing file parser on any text: queues and routes or `file:line:col` errors, never
//! a panic.
#![no_main]

use earshot::config::Routing;
use earshot_fuzz::nowhere;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = Routing::parse("routing.toml", text, nowhere(), &["known"]) {
        assert!(!errors.0.is_empty(), "an error result without errors");
        let _ = errors.to_string();
    }
});
