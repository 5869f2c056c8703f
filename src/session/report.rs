//! What a session served here reports about itself: the uuids of its
//! drivers (random, upstream's `str(uuid4())`), the `GetReport` tree of a
//! composite root with one child per exported network (upstream's
//! `Driver.report`, js/driver/base.py:202-230), and how a uuid sent by a
//! client is read (Python's `UUID(text)`).

use super::proto::jumpstarter::v1::{DriverInstanceReport, GetReportResponse};
use std::collections::HashMap;

/// The label that names a driver among its siblings.
pub(crate) const NAME_LABEL: &str = "jumpstarter.dev/name";
/// The label that names a driver's client class.
pub(crate) const CLIENT_LABEL: &str = "jumpstarter.dev/client";
/// The client class of upstream's `Composite` (the root).
pub(crate) const COMPOSITE_CLIENT: &str = "jumpstarter_driver_composite.client.CompositeClient";

/// A random (version 4) uuid, lowercase and hyphenated as Python's
/// `str(uuid4())`.
pub(crate) fn uuid4() -> String {
    let mut b = [0u8; 16];
    // Without the system's randomness the uuids are still told apart by
    // the counter and the clock mixed in below.
    if getrandom::fill(&mut b).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&n.to_le_bytes());
        b[8..].copy_from_slice(&t.to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format(&b)
}

fn format(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Reads `text` as Python's `UUID(text)` does (js/exporter/session.py:305
/// `UUID(request.uuid)`): `urn:` and `uuid:` prefixes, braces and hyphens
/// are dropped, and 32 hex digits must remain. Returns the canonical form
/// (lowercase, hyphenated).
pub(crate) fn parse_uuid(text: &str) -> Option<String> {
    let t = text.replace("urn:", "").replace("uuid:", "");
    let t = t.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if t.len() != 32 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(format(&b))
}

/// Python's `repr(UUID(…))`, as upstream's `KeyError` message shows it.
pub(crate) fn uuid_repr(canonical: &str) -> String {
    format!("UUID('{canonical}')")
}

/// One exported driver as the report shows it.
pub(crate) struct Entry<'a> {
    pub(crate) uuid: &'a str,
    pub(crate) name: &'a str,
    pub(crate) client: &'a str,
    pub(crate) labels: &'a [(String, String)],
}

/// The `GetReport` answer: the session's uuid, no labels, the root (no
/// parent, no name) and then each child in order, as upstream's
/// `root.enumerate()` lists a `Composite` of networks.
pub(crate) fn report(session: &str, root: &str, children: &[Entry<'_>]) -> GetReportResponse {
    let mut reports = vec![DriverInstanceReport {
        uuid: root.to_owned(),
        parent_uuid: None,
        labels: HashMap::from([(CLIENT_LABEL.to_owned(), COMPOSITE_CLIENT.to_owned())]),
        description: None,
        methods_description: HashMap::new(),
    }];
    for c in children {
        let mut labels: HashMap<String, String> = c.labels.iter().cloned().collect();
        labels.insert(CLIENT_LABEL.to_owned(), c.client.to_owned());
        labels.insert(NAME_LABEL.to_owned(), c.name.to_owned());
        reports.push(DriverInstanceReport {
            uuid: c.uuid.to_owned(),
            parent_uuid: Some(root.to_owned()),
            labels,
            description: None,
            methods_description: HashMap::new(),
        });
    }
    GetReportResponse {
        uuid: session.to_owned(),
        labels: HashMap::new(),
        reports,
        alternative_endpoints: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid4();
        let b = uuid4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(parse_uuid(&a).as_deref(), Some(a.as_str()));
    }

    #[test]
    fn uuids_are_read_as_python_reads_them() {
        let c = "0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b";
        for t in [
            c,
            "0B7E1D9C-1F0A-4C47-9C3A-6A1F0E2D3C4B",
            "0b7e1d9c1f0a4c479c3a6a1f0e2d3c4b",
            "{0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b}",
            "urn:uuid:0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b",
        ] {
            assert_eq!(parse_uuid(t).as_deref(), Some(c), "{t}");
        }
        for t in [
            "",
            "nope",
            "0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4",
            "g".repeat(32).as_str(),
        ] {
            assert_eq!(parse_uuid(t), None, "{t}");
        }
        assert_eq!(uuid_repr(c), format!("UUID('{c}')"));
    }

    #[test]
    fn the_report_is_a_composite_of_named_children() {
        let labels = [("k".to_string(), "v".to_string())];
        let r = report(
            "s",
            "r",
            &[Entry {
                uuid: "t",
                name: "tcp",
                client: "C",
                labels: &labels,
            }],
        );
        assert_eq!(r.uuid, "s");
        assert_eq!(r.reports.len(), 2);
        assert_eq!(r.reports[0].parent_uuid, None);
        assert!(!r.reports[0].labels.contains_key(NAME_LABEL));
        assert_eq!(r.reports[0].labels[CLIENT_LABEL], COMPOSITE_CLIENT);
        let t = &r.reports[1];
        assert_eq!(t.parent_uuid.as_deref(), Some("r"));
        assert_eq!(t.labels[NAME_LABEL], "tcp");
        assert_eq!(t.labels[CLIENT_LABEL], "C");
        assert_eq!(t.labels["k"], "v");
    }
}
