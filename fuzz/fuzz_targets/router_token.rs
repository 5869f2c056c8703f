//! The router's stream-token check (JWT, HS256/384/512). The first byte
//! picks the mode and the key's length, the key and the token (or stream id)
//! follow. Properties: no panic; a token that passes names a non-empty
//! stream and fails under any other key; a token minted for a stream passes
//! and names that stream, and any one-byte change to it is refused.
#![no_main]

use jumpwire::fuzzing::validate_token;
use jumpwire::router::token::mint;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let [how, rest @ ..] = data else {
        return;
    };
    let key_len = usize::from(how >> 1).min(rest.len());
    let (key, text) = rest.split_at(key_len);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut other = key.to_vec();
    other.push(b'x');
    if how & 1 == 0 {
        // Any token, any key.
        if let Ok(sub) = validate_token(text, key) {
            assert!(!sub.is_empty());
            assert!(
                validate_token(text, &other).is_err(),
                "valid under two keys"
            );
        }
        return;
    }
    // A minted token: the stream id and the key come from the input.
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    let (sub, tamper) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii() => (&text[..i], c as u8),
        _ => (text, b'A'),
    };
    let Ok(token) = mint(key, sub, Duration::from_secs(60)) else {
        assert!(
            key.is_empty() || sub.is_empty(),
            "mint refused {key:?} {sub:?}"
        );
        return;
    };
    assert_eq!(validate_token(&token, key.as_bytes()).as_deref(), Ok(sub));
    assert!(
        validate_token(&token, &other).is_err(),
        "valid under two keys"
    );
    let mut bytes = token.clone().into_bytes();
    let at = usize::from(tamper) * 7919 % bytes.len();
    if bytes[at] != tamper {
        bytes[at] = tamper;
        let changed = String::from_utf8(bytes).unwrap();
        assert!(
            validate_token(&changed, key.as_bytes()).is_err(),
            "{token:?} changed to {changed:?} still passes"
        );
    }
});
