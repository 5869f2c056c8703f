//! Options: the `name=value&...` text after `?` (or `#` on websocket client
//! URLs), checked against the names a scheme accepts, decoded, and written
//! back.

use super::{Ctx, percent};
use crate::error::Result;
use std::path::PathBuf;

/// The kind of value an option takes, for messages.
#[derive(Clone, Copy)]
pub(super) enum OptKind {
    Bool,
    Path,
    Secret,
    Count,
    List,
    Name,
}

impl OptKind {
    fn expected(self) -> &'static str {
        match self {
            OptKind::Bool => "0, 1, true or false",
            OptKind::Path => "a file path",
            OptKind::Secret => "a non-empty secret",
            OptKind::Count => "a whole number from 1 to 1073741824",
            OptKind::List => "a comma-separated list",
            OptKind::Name => "a name",
        }
    }
}

/// Options of a URL, as `name=raw value` pairs, checked against the names
/// the scheme accepts.
pub(super) struct Options<'a> {
    items: Vec<(&'a str, &'a str)>,
}

/// Splits `a=1&b=2` and checks every name against `allowed`: an unknown
/// option, a duplicate, an option without `=` or an empty `&&` is an error.
/// An empty or absent text means no options.
pub(super) fn parse_options<'a>(
    cx: &Ctx<'_>,
    text: Option<&'a str>,
    allowed: &[(&str, OptKind)],
    what: &str,
) -> Result<Options<'a>> {
    let mut items: Vec<(&str, &str)> = Vec::new();
    let text = text.unwrap_or("");
    if text.is_empty() {
        return Ok(Options { items });
    }
    for segment in text.split('&') {
        if segment.is_empty() {
            return Err(cx.err("empty option (two '&' in a row, or a '&' at an end)"));
        }
        let (name, value) = match segment.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (segment, None),
        };
        let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err(if allowed.is_empty() {
                cx.err(format_args!(
                    "unknown option {name:?} ({what} takes no options)"
                ))
            } else {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                cx.err(format_args!(
                    "unknown option {name:?} (expected {})",
                    names.join(", ")
                ))
            });
        };
        let Some(value) = value else {
            return Err(cx.err(format_args!(
                "option {name}: missing \"=VALUE\" (expected {})",
                kind.expected()
            )));
        };
        if items.iter().any(|(n, _)| *n == name) {
            return Err(cx.err(format_args!("option {name} is given more than once")));
        }
        items.push((name, value));
    }
    Ok(Options { items })
}

impl Options<'_> {
    pub(super) fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| *n == name)
    }

    /// The percent-decoded value of `name`. Decoding errors never quote the
    /// value (it may be a secret).
    pub(super) fn string(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<String>> {
        let Some(&(_, raw)) = self.items.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        decode_value(raw)
            .map(Some)
            .map_err(|why| cx.err(format_args!("option {name}: {why}")))
    }

    pub(super) fn bool(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<bool>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        match value.as_str() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" => Ok(Some(false)),
            _ => Err(cx.err(format_args!(
                "option {name}: expected {}, got {value:?}",
                OptKind::Bool.expected()
            ))),
        }
    }

    /// A non-empty value (a path or a secret).
    pub(super) fn non_empty(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        kind: OptKind,
    ) -> Result<Option<String>> {
        match self.string(cx, name)? {
            Some(v) if v.is_empty() => Err(cx.err(format_args!(
                "option {name}: value is empty (expected {})",
                kind.expected()
            ))),
            v => Ok(v),
        }
    }

    /// A whole number from 1 to 2^30.
    pub(super) fn count(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<u64>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(n) if (1..=1 << 30).contains(&n) && value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(n))
            }
            _ => Err(cx.err(format_args!(
                "option {name}: expected {}, got {value:?}",
                OptKind::Count.expected()
            ))),
        }
    }

    /// A comma-separated list: items are trimmed and must be non-empty and
    /// pass `item_ok` (which says what is wrong); an empty value is an empty
    /// list.
    pub(super) fn list(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        item_ok: impl Fn(&str) -> std::result::Result<(), &'static str>,
    ) -> Result<Option<Vec<String>>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut items = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(cx.err(format_args!(
                    "option {name}: empty item in {value:?} (expected {})",
                    OptKind::List.expected()
                )));
            }
            if let Err(why) = item_ok(item) {
                return Err(cx.err(format_args!("option {name}: {item:?} {why}")));
            }
            items.push(item.to_string());
        }
        Ok(Some(items))
    }

    pub(super) fn path(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<PathBuf>> {
        Ok(self.non_empty(cx, name, OptKind::Path)?.map(PathBuf::from))
    }

    /// Errors if any of `names` is present on a scheme without TLS.
    pub(super) fn tls_only(&self, cx: &Ctx<'_>, names: &[&str], tls_scheme: &str) -> Result<()> {
        match names.iter().find(|n| self.has(n)) {
            Some(name) => Err(cx.err(format_args!(
                "option {name} is only valid on {tls_scheme}://"
            ))),
            None => Ok(()),
        }
    }
}

/// Decodes the `%XX` escapes of an option value; the result must be UTF-8.
/// The error says what is wrong without quoting the value.
fn decode_value(raw: &str) -> std::result::Result<String, &'static str> {
    let bytes = percent::decode(raw, |_| true)
        .map_err(|_| "invalid percent escape (expected % and two hex digits)")?;
    String::from_utf8(bytes).map_err(|_| "value is not valid UTF-8 after percent-decoding")
}

/// A subprotocol name: an HTTP token (RFC 6455 section 4.1, RFC 7230); the
/// `protocols` option of both websocket URLs.
pub(super) fn protocol_ok(p: &str) -> std::result::Result<(), &'static str> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if p.bytes().all(tchar) {
        Ok(())
    } else {
        Err("is not a subprotocol name (an HTTP token)")
    }
}

/// Writes `?a=1&b=2` (or `#...`): the first option after `first`, the others
/// after `&`.
pub(super) struct OptWriter {
    sep: char,
}

impl OptWriter {
    pub(super) fn new(first: char) -> OptWriter {
        OptWriter { sep: first }
    }

    pub(super) fn write(
        &mut self,
        f: &mut std::fmt::Formatter<'_>,
        name: &str,
        value: &str,
    ) -> std::fmt::Result {
        write!(f, "{}{name}=", self.sep)?;
        self.sep = '&';
        for c in value.chars() {
            if matches!(c, '%' | '&' | '#') || c.is_whitespace() || c.is_control() {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(f, "%{b:02X}")?;
                }
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}
