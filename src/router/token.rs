//! Stream tokens: the JWTs that admit a caller to the router and name its
//! stream (`sub`). Minted as the upstream controller mints them (HS256, `iss`
//! [`ISSUER`], `aud` [`AUDIENCE`], `sub`, `iat` = `nbf` = now, `exp`, a random
//! `jti`) and validated as the upstream router validates them.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `iss` of a stream token.
pub const ISSUER: &str = "https://jumpstarter.dev/stream";
/// The `aud` of a stream token.
pub const AUDIENCE: &str = "https://jumpstarter.dev/router";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The HMAC of `alg` (HS256, HS384 or HS512) keyed with `key`, fed with
/// `input`; `None` for any other `alg`.
fn hmac_of(alg: &str, key: &[u8], input: &[u8]) -> Option<Box<dyn DynMac>> {
    fn run<M: Mac + hmac::digest::KeyInit + 'static>(key: &[u8], input: &[u8]) -> Box<dyn DynMac> {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(input);
        Box::new(m)
    }
    match alg {
        "HS256" => Some(run::<Hmac<sha2::Sha256>>(key, input)),
        "HS384" => Some(run::<Hmac<sha2::Sha384>>(key, input)),
        "HS512" => Some(run::<Hmac<sha2::Sha512>>(key, input)),
        _ => None,
    }
}

/// The two ends of an HMAC the token code needs, for any hash.
trait DynMac {
    fn sign(self: Box<Self>) -> Vec<u8>;
    /// Constant-time check of `sig` (the `hmac` crate's `verify_slice`).
    fn verify(self: Box<Self>, sig: &[u8]) -> bool;
}

impl<M: Mac> DynMac for M {
    fn sign(self: Box<Self>) -> Vec<u8> {
        self.finalize().into_bytes().to_vec()
    }

    fn verify(self: Box<Self>, sig: &[u8]) -> bool {
        self.verify_slice(sig).is_ok()
    }
}

fn mac(alg: &str, key: &[u8], input: &[u8]) -> Option<Vec<u8>> {
    hmac_of(alg, key, input).map(DynMac::sign)
}

/// Signs `claims` (a JSON object) with `header` (a JSON object whose `alg`
/// picks the HMAC: HS256, HS384 or HS512; any other `alg` gets an empty
/// signature). For tests that need tokens the router must refuse.
#[doc(hidden)]
pub fn sign_raw(key: &str, header: &str, claims: &str) -> String {
    let alg = serde_json::from_str::<Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = mac(&alg, key.as_bytes(), input.as_bytes()).unwrap_or_default();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Mints a stream token for `stream_id`, valid for `ttl`, signed with `key`
/// (HS256), as the upstream controller does.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for an empty key or stream id, or a zero `ttl`.
pub fn mint(key: &str, stream_id: &str, ttl: Duration) -> Result<String> {
    if key.is_empty() {
        return Err(Error::invalid("the router key is empty"));
    }
    if stream_id.is_empty() {
        return Err(Error::invalid("the stream id is empty"));
    }
    if ttl.as_secs() == 0 {
        return Err(Error::invalid("the token's lifetime must be at least 1 s"));
    }
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| Error::Io(format!("random jti: {e}")))?;
    jti[6] = (jti[6] & 0x0f) | 0x40;
    jti[8] = (jti[8] & 0x3f) | 0x80;
    let h: String = jti.iter().map(|b| format!("{b:02x}")).collect();
    let jti = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let now = now();
    // Field order as the controller's RegisteredClaims marshal them.
    let claims = format!(
        "{{\"iss\":{},\"sub\":{},\"aud\":[{}],\"exp\":{},\"nbf\":{now},\"iat\":{now},\"jti\":{}}}",
        Value::from(ISSUER),
        Value::from(stream_id),
        Value::from(AUDIENCE),
        now.saturating_add(ttl.as_secs()),
        Value::from(jti)
    );
    Ok(sign_raw(key, r#"{"alg":"HS256","typ":"JWT"}"#, &claims))
}

fn part(p: &str, what: &str) -> std::result::Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .map_err(|e| format!("{what} is not base64url: {e}"))
}

fn json(p: &str, what: &str) -> std::result::Result<Value, String> {
    let v: Value =
        serde_json::from_slice(&part(p, what)?).map_err(|e| format!("{what} is not JSON: {e}"))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(format!("{what} is not a JSON object"))
    }
}

fn time_claim(claims: &Value, name: &str) -> std::result::Result<Option<f64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("claim {name} is not a number")),
    }
}

/// Validates `token` as the upstream router does and returns its `sub`; the
/// error says why it was refused (for the router's log, not the caller).
pub(crate) fn validate(token: &str, key: &[u8]) -> std::result::Result<String, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT (expected three dot-separated parts)".into());
    };
    let header = json(h, "the header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let want = hmac_of(alg, key, format!("{h}.{c}").as_bytes())
        .ok_or_else(|| format!("signing method {alg:?} is not accepted (HS256/384/512 only)"))?;
    let sig = part(s, "the signature")?;
    // Constant time (issue 11): the hmac crate's verify_slice.
    if !want.verify(&sig) {
        return Err("signature is invalid".into());
    }
    let claims = json(c, "the claims")?;
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Err(format!("issuer is not {ISSUER}"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("audience does not include {AUDIENCE}"));
    }
    let now = now() as f64;
    match time_claim(&claims, "exp")? {
        None => return Err("claim exp is missing".into()),
        Some(exp) if now >= exp => return Err("token has expired".into()),
        Some(_) => {}
    }
    if let Some(iat) = time_claim(&claims, "iat")? {
        if iat > now {
            return Err("token used before issued".into());
        }
    }
    if let Some(nbf) = time_claim(&claims, "nbf")? {
        if nbf > now {
            return Err("token is not valid yet".into());
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(sub.to_owned()),
        _ => Err("claim sub is missing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_validates_and_names_its_stream() {
        let t = mint("k", "stream-1", Duration::from_secs(60)).unwrap();
        assert_eq!(validate(&t, b"k").unwrap(), "stream-1");
        assert_eq!(validate(&t, b"other").unwrap_err(), "signature is invalid");
        let claims: Value = json(t.split('.').nth(1).unwrap(), "c").unwrap();
        assert_eq!(claims["aud"], serde_json::json!([AUDIENCE]));
        assert_eq!(claims["iat"], claims["nbf"]);
        assert_eq!(
            claims["exp"].as_u64().unwrap(),
            claims["iat"].as_u64().unwrap() + 60
        );
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn signatures_that_differ_anyhow_are_refused() {
        let t = mint("k", "s", Duration::from_secs(60)).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let with = |sig: &[u8]| format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        let mut flipped = sig.clone();
        flipped[31] ^= 1;
        let longer = [&sig[..], &[0]].concat();
        let other_key = mint("other", "s", Duration::from_secs(60)).unwrap();
        let other_sig = other_key.rsplit_once('.').unwrap().1;
        for bad in [
            with(&flipped),
            with(&sig[..31]),
            with(&longer),
            with(&[]),
            format!("{input}.{other_sig}"),
        ] {
            assert_eq!(
                validate(&bad, b"k").unwrap_err(),
                "signature is invalid",
                "{bad}"
            );
        }
        assert_eq!(validate(&with(&sig), b"k").unwrap(), "s");
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let n = now();
        let claims = |iss: &str, aud: &str, exp: i64| {
            format!(
                r#"{{"iss":"{iss}","aud":"{aud}","sub":"s","exp":{},"iat":{n}}}"#,
                n as i64 + exp
            )
        };
        let good = claims(ISSUER, AUDIENCE, 60);
        for alg in ["HS256", "HS384", "HS512"] {
            let t = sign_raw("k", &format!(r#"{{"alg":"{alg}"}}"#), &good);
            assert_eq!(validate(&t, b"k").unwrap(), "s", "{alg}");
        }
        let cases = [
            (sign_raw("k", r#"{"alg":"none"}"#, &good), "signing method"),
            (sign_raw("k", r#"{"alg":"RS256"}"#, &good), "signing method"),
            (
                sign_raw("k", r#"{"alg":"HS256"}"#, &claims("x", AUDIENCE, 60)),
                "issuer",
            ),
            (
                sign_raw("k", r#"{"alg":"HS256"}"#, &claims(ISSUER, "x", 60)),
                "audience",
            ),
            (
                sign_raw("k", r#"{"alg":"HS256"}"#, &claims(ISSUER, AUDIENCE, -1)),
                "expired",
            ),
            (
                sign_raw(
                    "k",
                    r#"{"alg":"HS256"}"#,
                    &format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"s"}}"#),
                ),
                "exp is missing",
            ),
            ("a.b".to_string(), "three"),
        ];
        for (t, why) in cases {
            let e = validate(&t, b"k").unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }
}
