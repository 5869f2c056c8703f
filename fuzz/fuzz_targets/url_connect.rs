//! Connect URLs (`Endpoint::parse`, every scheme). Properties: parsing never
//! panics; a failure is `InvalidArgument` with a message; an endpoint's
//! canonical text parses back to the same endpoint and is its own canonical
//! text; `redact` hides every `key=` value from the message.
#![no_main]

use jumpwire::Error;
use jumpwire::url::{Endpoint, redact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = redact(url);
    match Endpoint::parse(url) {
        Ok(endpoint) => {
            let text = endpoint.to_string();
            let again = Endpoint::parse(&text)
                .unwrap_or_else(|e| panic!("{url:?} is {text:?}, which does not parse: {e}"));
            assert_eq!(again, endpoint, "{url:?} -> {text:?}");
            assert_eq!(again.to_string(), text, "{url:?}");
        }
        Err(Error::InvalidArgument(msg)) => {
            assert!(!msg.is_empty(), "{url:?}");
            if !url.is_empty() {
                assert!(msg.starts_with(&redacted), "{url:?}: {msg:?}");
            }
        }
        Err(e) => panic!("{url:?}: not an InvalidArgument: {e:?}"),
    }
});
