//! Standard Webhooks signatures with hostile secrets, timestamps, tolerances and headers:
//! never a panic or an overflow; a signature made with a key verifies within the tolerance
//! and never outside it, also among other candidates in the header; a header of garbage
//! verifies only if it carries the real signature.
#![no_main]

use arbitrary::Arbitrary;
use earshot::sink::signature::SigningKey;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    secret: String,
    id: String,
    timestamp: i64,
    body: Vec<u8>,
    header: String,
    now: i64,
    tolerance: i64,
}

fuzz_target!(|i: Input| {
    let Ok(key) = SigningKey::from_secret(&i.secret) else {
        return;
    };
    let signature = key.sign(&i.id, i.timestamp, &i.body);
    assert!(signature.starts_with("v1,"));
    let fresh = (i128::from(i.now) - i128::from(i.timestamp)).abs() <= i128::from(i.tolerance);
    let verify = |header: &str| key.verify(&i.id, i.timestamp, &i.body, header, i.now, i.tolerance);
    assert_eq!(verify(&signature), fresh, "own signature, fresh = {fresh}");
    let among = format!("{} {signature} v1,AAAA", i.header);
    assert_eq!(verify(&among), fresh, "own signature among others");
    if verify(&i.header) {
        assert!(
            fresh && i.header.contains(&signature[3..]),
            "a forged header verified"
        );
    }
});
