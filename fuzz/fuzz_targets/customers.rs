//! The customer-table loaders (the first byte picks CSV, JSON array or JSON lines) on any
//! bytes, under small limits so that the limits themselves are exercised: a table or an
//! error, never a panic; every row kept can be looked up.
#![no_main]

use std::path::Path;

use earshot::customers::{CustomerLimits, CustomerTable, Format};
use earshot::post::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Csv,
        1 => Format::Json,
        _ => Format::JsonLines,
    };
    let limits = CustomerLimits {
        max_bytes: 64 << 10,
        max_rows: 64,
        max_field_bytes: 32,
    };
    match CustomerTable::parse(Path::new("fuzz.csv"), format, bytes, &limits) {
        Ok(loaded) => {
            let table = &loaded.table;
            assert!(table.len() <= limits.max_rows);
            for platform in [
                Platform::Bluesky,
                Platform::X,
                Platform::Mastodon,
                Platform::Reddit,
            ] {
                let _ = table.lookup(platform, "did:plc:fuzz", Some("@Fuzz"));
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.reason());
        }
    }
});
