//! Listen URLs (`ListenEndpoint::parse`: tcp, unix, ws with its options,
//! grpc/grpcs with the router key). Properties: parsing never panics; a
//! failure is `InvalidArgument` quoting the redacted URL; neither messages,
//! nor `Display`, nor `Debug` show the router key; the canonical text parses
//! back to the same endpoint (the router's key and certificate files, which
//! it leaves out, given back).
#![no_main]

use jumpwire::Error;
use jumpwire::url::{ListenEndpoint, redact};
use libfuzzer_sys::fuzz_target;

/// The router key of a `grpc://`/`grpcs://` URL as the parser finds it (the
/// `key=` option of the query), long enough that finding it elsewhere is not
/// a coincidence. (Text after `key=` elsewhere, such as inside another
/// option's value, is no key: messages may quote it.)
fn secrets(url: &str) -> Vec<&str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    if !(scheme.eq_ignore_ascii_case("grpc") || scheme.eq_ignore_ascii_case("grpcs")) {
        return Vec::new();
    }
    let before_fragment = rest.split('#').next().unwrap_or("");
    let Some((_, query)) = before_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|o| o.strip_prefix("key="))
        .filter(|v| v.len() >= 6)
        .collect()
}

/// `%XX` decoded leniently: what a message could show of a value.
fn decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = redact(url);
    let plain = format!("{redacted} {}", decoded(&redacted));
    // Text that also appears before the query (as the host or port) is not
    // checked: messages may quote the host or port, which is no key. (A key
    // typed after '&' instead of '?', `grpc://h:0&key=SECRET`, lands in the
    // quoted port: messages redact `key=` in quoted parts, see src/url/mod.rs.)
    let before_query = url.split('?').next().unwrap_or("");
    let hidden: Vec<&str> = secrets(url)
        .into_iter()
        .filter(|s| !plain.contains(s) && !plain.contains(&decoded(s)))
        .filter(|s| !before_query.contains(s))
        .collect();
    let shown = match ListenEndpoint::parse(url) {
        Ok(endpoint) => {
            let text = endpoint.to_string();
            let again = match &endpoint {
                ListenEndpoint::Router(c) => {
                    let ListenEndpoint::Router(mut again) =
                        ListenEndpoint::parse(&format!("{text}?key=k"))
                            .unwrap_or_else(|e| panic!("{url:?} is {text:?}: {e}"))
                    else {
                        panic!("{url:?} -> {text:?} is not a router");
                    };
                    again.key = c.key.clone();
                    again.cert = c.cert.clone();
                    again.key_file = c.key_file.clone();
                    ListenEndpoint::Router(again)
                }
                _ => ListenEndpoint::parse(&text)
                    .unwrap_or_else(|e| panic!("{url:?} is {text:?}, which does not parse: {e}")),
            };
            assert_eq!(again, endpoint, "{url:?} -> {text:?}");
            assert_eq!(again.to_string(), text, "{url:?}");
            format!("{text} {endpoint:?}")
        }
        Err(Error::InvalidArgument(msg)) => {
            if !url.is_empty() {
                assert!(msg.starts_with(&redacted), "{url:?}: {msg:?}");
            }
            msg
        }
        Err(e) => panic!("{url:?}: not an InvalidArgument: {e:?}"),
    };
    for s in hidden {
        assert!(
            !shown.contains(s),
            "{url:?}: the key {s:?} shows in {shown:?}"
        );
    }
});
