//! Verifies the HTTP signatures Drone puts on configuration-extension
//! requests (draft-cavage HTTP signatures, `hmac-sha256`, a shared secret).
//!
//! Stricter than Drone's own verifier: the signed headers must include
//! `date` and `digest`, the `Digest` must match the body, and the `Date` must
//! be within a window of now, so a captured request cannot be replayed
//! later or with another body. Pure: the caller passes the clock.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The headers Drone signs, in the order it signs them.
pub const DRONE_SIGNED_HEADERS: &str = "accept accept-encoding content-type date digest";

/// The parts of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`, ...
    pub method: &'a str,
    /// The path and query, for `(request-target)`.
    pub target: &'a str,
    /// Header names and values as received.
    pub headers: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    /// The first value of header `name`, trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// Every value of header `name`, trimmed and joined with `, ` (as
    /// RFC 9421 reads a field sent more than once).
    pub fn header_values(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// Why a request was refused: a short reason for the response body, and
/// the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No `Signature` header: 401.
    Unsigned,
    /// A header is missing or cannot be read: 400.
    Malformed(String),
    /// The signature does not match the secret: 401.
    BadSignature,
    /// The body is not the one that was signed: 400.
    BadDigest,
    /// The `Date` is outside the accepted window: 401.
    Stale,
}

impl Rejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Malformed(_) | Rejection::BadDigest => 400,
            Rejection::Unsigned | Rejection::BadSignature | Rejection::Stale => 401,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unsigned => f.write_str("unsigned request"),
            Rejection::Malformed(what) => write!(f, "malformed request: {what}"),
            Rejection::BadSignature => f.write_str("bad signature"),
            Rejection::BadDigest => f.write_str("digest does not match the body"),
            Rejection::Stale => f.write_str("date outside the accepted window"),
        }
    }
}

/// The fields of a `Signature` header.
#[derive(Debug, Default, PartialEq, Eq)]
struct SignatureHeader {
    key_id: String,
    algorithm: String,
    headers: Vec<String>,
    signature: Vec<u8>,
}

fn parse_signature_header(value: &str) -> Result<SignatureHeader, Rejection> {
    let malformed = |what: &str| Rejection::Malformed(format!("Signature header: {what}"));
    let mut parsed = SignatureHeader::default();
    let mut rest = value.trim();
    let mut signature = None;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("expected key=\"value\""))?;
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| malformed("values must be quoted"))?;
        let (field, after) = after
            .split_once('"')
            .ok_or_else(|| malformed("unterminated value"))?;
        match key.trim() {
            "keyId" => parsed.key_id = field.to_string(),
            "algorithm" => parsed.algorithm = field.to_ascii_lowercase(),
            "headers" => {
                parsed.headers = field
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            }
            "signature" => signature = Some(field.to_string()),
            _ => {} // created, expires: not used by Drone
        }
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    let signature = signature.ok_or_else(|| malformed("no signature"))?;
    parsed.signature = BASE64
        .decode(signature.as_bytes())
        .map_err(|_| malformed("signature is not base64"))?;
    if parsed.headers.is_empty() {
        // The draft's default: only the date is signed, which we refuse below.
        parsed.headers = vec!["date".into()];
    }
    Ok(parsed)
}

/// The string the signature is computed over: `name: value` lines joined
/// by `\n`, in the order the `headers` field lists them.
fn signing_string(request: &SignedRequest<'_>, headers: &[String]) -> Result<String, Rejection> {
    let mut lines = Vec::with_capacity(headers.len());
    for name in headers {
        let value = if name == "(request-target)" {
            format!("{} {}", request.method.to_ascii_lowercase(), request.target)
        } else {
            request
                .header(name)
                .ok_or_else(|| {
                    // The name comes from the request: a few characters of
                    // it are enough to say which.
                    let shown: String = name.chars().take(32).collect();
                    let cut = if shown.len() < name.len() { "…" } else { "" };
                    Rejection::Malformed(format!("signed header `{shown}{cut}` is missing"))
                })?
                .to_string()
        };
        lines.push(format!("{name}: {value}"));
    }
    Ok(lines.join("\n"))
}

/// `SHA-256=<base64>` of `body`, as the `Digest` header carries it.
pub fn digest_header(body: &[u8]) -> String {
    format!("SHA-256={}", BASE64.encode(sha2::Sha256::digest(body)))
}

/// Checks `request` against `secret`; `Ok` returns the signature bytes,
/// which a server can remember to refuse replays within the window.
pub fn verify(
    secret: &[u8],
    request: &SignedRequest<'_>,
    now: SystemTime,
    window: Duration,
) -> Result<Vec<u8>, Rejection> {
    // Drone sends `Signature:`; other signers put the same fields in
    // `Authorization: Signature ...`.
    let header = request
        .header("signature")
        .or_else(|| {
            request
                .header("authorization")
                .and_then(|v| v.strip_prefix("Signature "))
        })
        .ok_or(Rejection::Unsigned)?;
    let signature = parse_signature_header(header)?;
    if signature.algorithm != "hmac-sha256" && !signature.algorithm.is_empty() {
        return Err(Rejection::Malformed(format!(
            "algorithm `{}` is not hmac-sha256",
            signature.algorithm
        )));
    }
    for required in ["date", "digest"] {
        if !signature.headers.iter().any(|h| h == required) {
            return Err(Rejection::Malformed(format!("`{required}` is not signed")));
        }
    }
    let text = signing_string(request, &signature.headers)?;
    let mut mac = HmacSha256::new_from_slice(secret)
        .map_err(|_| Rejection::Malformed("unusable secret".into()))?;
    mac.update(text.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature.signature)
        .map_err(|_| Rejection::BadSignature)?;

    let digest = request.header("digest").unwrap_or_default();
    if !constant_time_eq(digest.as_bytes(), digest_header(request.body).as_bytes()) {
        return Err(Rejection::BadDigest);
    }
    let date = request.header("date").unwrap_or_default();
    let sent = httpdate::parse_http_date(date)
        .map_err(|_| Rejection::Malformed(format!("`Date: {date}` is not an HTTP date")))?;
    let skew = now
        .duration_since(sent)
        .or_else(|_| sent.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > window {
        return Err(Rejection::Stale);
    }
    Ok(signature.signature)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "correct horse battery staple";
    const BODY: &[u8] = br#"{"repo":{"slug":"octo/mono"},"build":{"event":"push"}}"#;

    /// Signs as Drone does, with the test signer written apart from the
    /// code under test.
    fn drone_request(secret: &str, body: &[u8], date: SystemTime) -> Vec<(String, String)> {
        crate::signed::drone_headers(secret, body, date)
    }

    fn check(
        headers: &[(String, String)],
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, Rejection> {
        let request = SignedRequest {
            method: "POST",
            target: "/",
            headers,
            body,
        };
        verify(SECRET.as_bytes(), &request, now, Duration::from_secs(300))
    }

    #[test]
    fn accepts_what_drone_signs() {
        let now = SystemTime::now();
        let headers = drone_request(SECRET, BODY, now);
        assert!(check(&headers, BODY, now).is_ok());
        assert!(check(&headers, BODY, now + Duration::from_secs(120)).is_ok());
    }

    #[test]
    fn refuses_tampering_wrong_secrets_and_stale_dates() {
        let now = SystemTime::now();
        let headers = drone_request(SECRET, BODY, now);
        assert_eq!(check(&headers, b"{}", now), Err(Rejection::BadDigest));
        let wrong = drone_request("another secret", BODY, now);
        assert_eq!(check(&wrong, BODY, now), Err(Rejection::BadSignature));
        assert_eq!(
            check(&headers, BODY, now + Duration::from_secs(600)),
            Err(Rejection::Stale)
        );
        let early = now - Duration::from_secs(600);
        assert_eq!(check(&headers, BODY, early), Err(Rejection::Stale));

        // A re-signed digest header without the secret changes the signature.
        let mut forged = headers.clone();
        forged[4].1 = digest_header(b"{}");
        assert_eq!(check(&forged, b"{}", now), Err(Rejection::BadSignature));
    }

    #[test]
    fn refuses_unsigned_and_malformed_requests() {
        let now = SystemTime::now();
        let headers = drone_request(SECRET, BODY, now);
        let unsigned: Vec<_> = headers[..5].to_vec();
        assert_eq!(check(&unsigned, BODY, now), Err(Rejection::Unsigned));
        assert_eq!(Rejection::Unsigned.status(), 401);

        let mut garbage = headers.clone();
        garbage[5].1 = "nonsense".into();
        assert!(matches!(
            check(&garbage, BODY, now),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(Rejection::Malformed(String::new()).status(), 400);

        let mut no_digest = headers.clone();
        no_digest[5].1 = no_digest[5].1.replace(" digest\"", "\"");
        let err = check(&no_digest, BODY, now).unwrap_err();
        assert_eq!(err, Rejection::Malformed("`digest` is not signed".into()));

        let mut missing = headers.clone();
        missing.remove(1);
        let err = check(&missing, BODY, now).unwrap_err();
        assert_eq!(
            err,
            Rejection::Malformed("signed header `accept-encoding` is missing".into())
        );
    }

    #[test]
    fn the_authorization_header_form_is_accepted_too() {
        let now = SystemTime::now();
        let mut headers = drone_request(SECRET, BODY, now);
        let (_, fields) = headers.pop().unwrap();
        headers.push(("Authorization".into(), format!("Signature {fields}")));
        assert!(check(&headers, BODY, now).is_ok());
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let now = SystemTime::now();
        let mut headers = drone_request(SECRET, BODY, now);
        for (name, _) in &mut headers {
            *name = name.to_ascii_uppercase();
        }
        assert!(check(&headers, BODY, now).is_ok());
    }
}
