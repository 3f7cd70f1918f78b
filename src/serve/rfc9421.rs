//! Verifies the HTTP message signatures (RFC 9421) Woodpecker puts on its
//! configuration-extension requests: ed25519 over `@request-target` and
//! `content-digest`, with a `created` time. Pure: the caller passes the
//! clock and the key.
//!
//! The request must cover both components, its `Content-Digest` must match
//! the body, and `created` must lie within a window of now, so a captured
//! request cannot be replayed later or with another body.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::Digest as _;

use crate::signature::{Rejection, SignedRequest};

/// The components a request must sign.
pub const REQUIRED: [&str; 2] = ["@request-target", "content-digest"];

/// The public key from Woodpecker's `/api/signature/public-key` (PEM).
pub fn public_key(pem: &str) -> Result<VerifyingKey, String> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        format!("not an ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`): {e}")
    })
}

/// Verifies `request` with `key`; on success, the signature's bytes (for
/// replay detection).
pub fn verify(
    key: &VerifyingKey,
    request: &SignedRequest<'_>,
    now: SystemTime,
    window: Duration,
) -> Result<Vec<u8>, Rejection> {
    let (Some(inputs), Some(signatures)) = (
        request.header("signature-input"),
        request.header("signature"),
    ) else {
        return Err(Rejection::Unsigned);
    };
    let inputs = dictionary(inputs)?;
    let signatures = dictionary(signatures)?;
    let digest = request
        .header("content-digest")
        .ok_or_else(|| Rejection::Malformed("no Content-Digest header".into()))?;
    check_digest(digest, request.body)?;
    let mut last =
        Rejection::Malformed("no signature covers `@request-target` and `content-digest`".into());
    for (label, input) in &inputs {
        let Some((_, signature)) = signatures.iter().find(|(l, _)| l == label) else {
            continue;
        };
        match verify_one(key, request, input, signature, now, window) {
            Ok(bytes) => return Ok(bytes),
            Err(why) => last = why,
        }
    }
    Err(last)
}

fn verify_one(
    key: &VerifyingKey,
    request: &SignedRequest<'_>,
    input: &str,
    signature: &str,
    now: SystemTime,
    window: Duration,
) -> Result<Vec<u8>, Rejection> {
    let malformed = |what: &str| Rejection::Malformed(what.to_string());
    let (components, params) =
        inner_list(input).ok_or_else(|| malformed("unreadable Signature-Input"))?;
    for required in REQUIRED {
        if !components.iter().any(|c| c == required) {
            return Err(Rejection::Malformed(format!(
                "the signature does not cover `{required}`"
            )));
        }
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(alg) = param("alg")
        && alg != "\"ed25519\""
    {
        return Err(Rejection::Malformed(format!(
            "signature algorithm {alg}, not ed25519"
        )));
    }
    let created: u64 = param("created")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| malformed("the signature has no `created` time"))?;
    let created = SystemTime::UNIX_EPOCH + Duration::from_secs(created);
    let skew = match now.duration_since(created) {
        Ok(age) => age,
        Err(ahead) => ahead.duration(),
    };
    if skew > window {
        return Err(Rejection::Stale);
    }
    if let Some(expires) = param("expires").and_then(|v| v.parse::<u64>().ok())
        && SystemTime::UNIX_EPOCH + Duration::from_secs(expires) < now
    {
        return Err(Rejection::Stale);
    }
    let bytes = signature
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|b64| BASE64.decode(b64).ok())
        .ok_or_else(|| malformed("the Signature is not a byte sequence"))?;
    let signature = Signature::from_slice(&bytes).map_err(|_| Rejection::BadSignature)?;
    let mut base = String::new();
    for component in &components {
        let value = if component == "@request-target" {
            request.target.to_string()
        } else if component.starts_with('@') {
            return Err(Rejection::Malformed(format!(
                "unsupported derived component `{component}`"
            )));
        } else {
            request.header_values(component).ok_or_else(|| {
                Rejection::Malformed(format!("signed header `{component}` is missing"))
            })?
        };
        base.push_str(&format!("\"{component}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {input}"));
    key.verify(base.as_bytes(), &signature)
        .map_err(|_| Rejection::BadSignature)?;
    Ok(bytes)
}

/// Checks that a `Content-Digest` names the body: every `sha-256` and
/// `sha-512` member must match, and one must be there.
fn check_digest(header: &str, body: &[u8]) -> Result<(), Rejection> {
    let mut checked = false;
    for (algorithm, value) in dictionary(header)? {
        let expected = match algorithm.as_str() {
            "sha-256" => sha2::Sha256::digest(body).to_vec(),
            "sha-512" => sha2::Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let given = value
            .strip_prefix(':')
            .and_then(|s| s.strip_suffix(':'))
            .and_then(|b64| BASE64.decode(b64).ok());
        if given.as_deref() != Some(expected.as_slice()) {
            return Err(Rejection::BadDigest);
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(Rejection::Malformed(
            "Content-Digest has no sha-256 or sha-512".into(),
        ))
    }
}

/// A structured-field dictionary as `(key, raw member value)`, members
/// split at commas outside strings and inner lists.
fn dictionary(text: &str) -> Result<Vec<(String, String)>, Rejection> {
    let mut members = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    let bytes = text.as_bytes();
    let mut push = |part: &str| -> Result<(), Rejection> {
        let part = part.trim();
        if part.is_empty() {
            return Ok(());
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| Rejection::Malformed(format!("`{}` is not `key=value`", cut(part))))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            return Err(Rejection::Malformed(format!("bad key `{}`", cut(key))));
        }
        members.push((key.to_string(), value.trim().to_string()));
        Ok(())
    };
    for (i, &b) in bytes.iter().enumerate() {
        if quoted {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                push(&text[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&text[start..])?;
    Ok(members)
}

/// A member's parameters, `key=raw value`, in order.
type Params = Vec<(String, String)>;

/// An inner list of strings and its parameters: `("a" "b");k=v;k2="x"`.
fn inner_list(text: &str) -> Option<(Vec<String>, Params)> {
    let rest = text.strip_prefix('(')?;
    let close = rest.find(')')?;
    let items = rest[..close]
        .split_ascii_whitespace()
        .map(|item| {
            let inner = item.strip_prefix('"')?.strip_suffix('"')?;
            (!inner.contains(['"', '\\'])).then(|| inner.to_string())
        })
        .collect::<Option<Vec<_>>>()?;
    let params = rest[close + 1..]
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((items, params))
}

/// At most 32 characters of untrusted text, for a message.
fn cut(text: &str) -> String {
    text.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000;

    /// Signs as Woodpecker's client does, with the test signer written
    /// apart from the code under test; `created` in seconds.
    fn signed(key: &SigningKey, target: &str, body: &[u8], created: u64) -> Vec<(String, String)> {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(created);
        crate::signed::woodpecker_headers(key, target, body, created)
    }

    fn check(
        headers: &[(String, String)],
        target: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, Rejection> {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let request = SignedRequest {
            method: "POST",
            target,
            headers,
            body,
        };
        verify(
            &key,
            &request,
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn woodpeckers_signatures_verify_and_tampering_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let body = br#"{"repo":{}}"#;
        let headers = signed(&key, "/", body, NOW - 10);
        assert!(check(&headers, "/", body).is_ok());
        assert_eq!(
            check(&headers, "/", b"{\"repo\":1}"),
            Err(Rejection::BadDigest)
        );
        assert_eq!(
            check(&headers, "/other", body),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&signed(&key, "/", body, NOW - 301), "/", body),
            Err(Rejection::Stale)
        );
        assert_eq!(
            check(&signed(&key, "/", body, NOW + 301), "/", body),
            Err(Rejection::Stale)
        );
        let stranger = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            check(&signed(&stranger, "/", body, NOW), "/", body),
            Err(Rejection::BadSignature)
        );
        assert_eq!(check(&[], "/", body), Err(Rejection::Unsigned));
    }

    #[test]
    fn both_components_must_be_signed() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let body = b"{}";
        let mut headers = signed(&key, "/", body, NOW);
        let input = headers
            .iter_mut()
            .find(|(name, _)| name == "signature-input")
            .unwrap();
        input.1 = input.1.replace(" \"content-digest\"", "");
        assert!(matches!(
            check(&headers, "/", body),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn hostile_headers_are_refused_not_panicked_on() {
        let body = b"{}";
        for (input, signature, digest) in [
            ("x", "x", "x"),
            ("a=(", "a=:", "sha-256=:"),
            (
                "a=(\"@request-target\" \"content-digest\");created=zz",
                "a=:AA==:",
                "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:",
            ),
            ("A=()", "a=::", "md5=:x:"),
            ("a=\"unterminated", "a=:@@:", ""),
        ] {
            let headers = vec![
                ("signature-input".to_string(), input.to_string()),
                ("signature".to_string(), signature.to_string()),
                ("content-digest".to_string(), digest.to_string()),
            ];
            assert!(check(&headers, "/", body).is_err(), "{input}");
        }
    }

    #[test]
    fn public_keys_are_read_from_pem() {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        assert_eq!(public_key(&pem).unwrap(), key);
        assert!(public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
        assert!(public_key("").is_err());
    }
}
