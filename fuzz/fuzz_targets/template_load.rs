//! Payload template files (the first byte picks the CRM format) on any text: compiled, or
//! errors with places, never a panic or a hang. A template that compiles has rendered every
//! sample message already; it renders the full sample mention once more here.
#![no_main]

use std::collections::BTreeMap;

use earshot::sink::payload::{Payload, PayloadFormat};
use earshot_fuzz::{sample_outgoing, SAMPLE_MENTION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let crm = &PayloadFormat::ALL[1..];
    let format = crm[usize::from(selector) % crm.len()];
    let vars = BTreeMap::from([("queue_var".to_string(), "value".to_string())]);
    match Payload::parse(format, "fuzz.toml", text, &vars) {
        Ok(payload) => {
            let data = serde_json::value::RawValue::from_string(SAMPLE_MENTION.to_string())
                .expect("the sample mention is JSON");
            let _ = payload.render(&sample_outgoing(&data));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
