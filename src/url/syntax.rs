//! The generic URL syntax: the scheme, `//authority/path?query#fragment`,
//! the host and the port, and the host as a URL writes it.

use super::Ctx;
use crate::error::Result;

/// Splits `scheme:rest`, lower-casing the scheme. `None` when there is no
/// syntactically valid scheme (RFC 3986: a letter, then letters, digits, `+`,
/// `-`, `.`).
pub(super) fn split_scheme(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

/// The parts of a `scheme://authority/path?query#fragment` URL, after the
/// scheme.
pub(super) struct NetParts<'a> {
    pub(super) authority: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) fragment: Option<&'a str>,
}

/// Splits `//authority/path?query#fragment`. `form` is the expected shape,
/// for the message when the `//` is missing.
pub(super) fn split_net<'a>(cx: &Ctx<'_>, rest: &'a str, form: &str) -> Result<NetParts<'a>> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(cx.err(format_args!("expected {form}")));
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((a, frag)) => (a, Some(frag)),
        None => (after, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (before_fragment, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    Ok(NetParts {
        authority,
        path,
        query,
        fragment,
    })
}

impl NetParts<'_> {
    /// Errors if there is a path (for schemes that take none).
    pub(super) fn no_path(&self, cx: &Ctx<'_>, form: &str) -> Result<()> {
        if self.path.is_empty() {
            Ok(())
        } else {
            Err(cx.err(format_args!("takes no path (expected {form})")))
        }
    }

    /// Errors if there is a fragment (for schemes that take none).
    pub(super) fn no_fragment(&self, cx: &Ctx<'_>) -> Result<()> {
        if self.fragment.is_none() {
            Ok(())
        } else {
            Err(cx.err("takes no fragment (write a '#' inside an option value as %23)"))
        }
    }
}

/// Parses `HOST[:PORT]` into the host (IPv6 without brackets) and the raw
/// port text, if any.
pub(super) fn parse_authority<'a>(
    cx: &Ctx<'_>,
    authority: &'a str,
) -> Result<(String, Option<&'a str>)> {
    if authority.is_empty() {
        return Err(cx.err("host is missing"));
    }
    if authority.contains('@') {
        return Err(cx.err("user info (USER@) is not supported"));
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(cx.err("host: '[' without a closing ']'"));
        };
        if !is_ipv6_with_zone(host) {
            return Err(cx.err(format_args!(
                "host {host:?} is not a valid IPv6 address (with an optional %zone)"
            )));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(cx.err(format_args!(
                        "unexpected {after:?} after ']' (expected :PORT)"
                    )));
                }
            },
        };
        return Ok((host.to_owned(), port));
    }
    if authority.matches(':').count() > 1 {
        return Err(cx.err(format_args!(
            "an IPv6 address must be in brackets, e.g. {}://[::1]:PORT",
            cx.scheme
        )));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    check_hostname(cx, host)?;
    Ok((host.to_owned(), port))
}

fn is_ipv6_with_zone(s: &str) -> bool {
    let (addr, zone) = match s.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (s, None),
    };
    addr.parse::<std::net::Ipv6Addr>().is_ok()
        && zone.is_none_or(|z| {
            !z.is_empty()
                && z.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Accepts a host name (letters, digits, `-`, `.`, `_`) or an IPv4 address.
fn check_hostname(cx: &Ctx<'_>, host: &str) -> Result<()> {
    if host.is_empty() {
        return Err(cx.err("host is missing"));
    }
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(cx.err(format_args!(
            "host {host:?} contains {c:?} (expected a host name, an IPv4 address or [IPv6])"
        )));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(cx.err(format_args!("host {host:?} is not a valid IPv4 address"))),
        };
    }
    if host.len() > 253 {
        return Err(cx.err(format_args!("host is {} bytes long (max 253)", host.len())));
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    if labels.split('.').any(str::is_empty) {
        return Err(cx.err(format_args!("host {host:?} has an empty label")));
    }
    if labels.split('.').any(|l| l.len() > 63) {
        return Err(cx.err(format_args!(
            "host {host:?} has a label longer than 63 bytes"
        )));
    }
    Ok(())
}

/// Parses a required port. `min` is 1 for destinations, 0 for listeners.
pub(super) fn parse_port(cx: &Ctx<'_>, raw: Option<&str>, form: &str, min: u16) -> Result<u16> {
    let Some(raw) = raw else {
        return Err(cx.err(format_args!("port is missing (expected {form})")));
    };
    check_digits(cx, "port", raw)?;
    match raw.parse::<u16>() {
        Ok(0) if min > 0 => Err(cx.err("port 0 is not a destination (expected 1-65535)")),
        Ok(port) => Ok(port),
        Err(_) => Err(cx.err(format_args!("port {raw:?} is out of range ({min}-65535)"))),
    }
}

/// Parses a decimal u32 part named `what`.
pub(super) fn parse_u32(cx: &Ctx<'_>, what: &str, raw: &str) -> Result<u32> {
    check_digits(cx, what, raw)?;
    raw.parse::<u32>().map_err(|_| {
        cx.err(format_args!(
            "{what} {raw:?} is out of range (0-{})",
            u32::MAX
        ))
    })
}

/// Errors unless `raw` is a non-empty run of ASCII digits.
fn check_digits(cx: &Ctx<'_>, what: &str, raw: &str) -> Result<()> {
    if raw.is_empty() {
        Err(cx.err(format_args!("{what} is empty")))
    } else if !raw.bytes().all(|b| b.is_ascii_digit()) {
        Err(cx.err(format_args!("{what} {raw:?} is not a decimal number")))
    } else {
        Ok(())
    }
}

/// A host as it appears in a URL: IPv6 in brackets.
pub(super) struct HostFmt<'a>(pub(super) &'a str);

impl std::fmt::Display for HostFmt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}
