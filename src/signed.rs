//! Requests signed the way Drone and Woodpecker sign them, for ripple's
//! own tests and benchmarks (feature `testutil`). Written from the CI
//! systems' descriptions, apart from ripple's verifier (`signature`), so
//! that each checks the other.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;

/// Drone's signing: a digest of the body, then HMAC-SHA256 with `secret`
/// over the five headers as `name: value` lines.
pub fn drone_headers(secret: &str, body: &[u8], date: SystemTime) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "accept".to_string(),
            "application/vnd.drone.config.v1+json".to_string(),
        ),
        ("accept-encoding".to_string(), "identity".to_string()),
        ("content-type".to_string(), "application/json".to_string()),
        ("date".to_string(), httpdate::fmt_http_date(date)),
        (
            "digest".to_string(),
            format!("SHA-256={}", BASE64.encode(sha2::Sha256::digest(body))),
        ),
    ];
    let signing = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    headers.push((
        "signature".to_string(),
        format!(
            "keyId=\"hmac-key\",algorithm=\"hmac-sha256\",signature=\"{signature}\",\
             headers=\"accept accept-encoding content-type date digest\""
        ),
    ));
    headers
}

/// Woodpecker's signing (RFC 9421, as its `httpsign` client does): ed25519
/// over `@request-target` (`target`) and `content-digest`, with `created`.
pub fn woodpecker_headers(
    key: &ed25519_dalek::SigningKey,
    target: &str,
    body: &[u8],
    created: SystemTime,
) -> Vec<(String, String)> {
    use ed25519_dalek::Signer as _;
    let created = created
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let digest = format!("sha-256=:{}:", BASE64.encode(sha2::Sha256::digest(body)));
    let params =
        format!("(\"@request-target\" \"content-digest\");created={created};alg=\"ed25519\"");
    let base = format!(
        "\"@request-target\": {target}\n\"content-digest\": {digest}\n\"@signature-params\": {params}"
    );
    let signature = BASE64.encode(key.sign(base.as_bytes()).to_bytes());
    vec![
        ("content-type".into(), "application/json".into()),
        ("content-digest".into(), digest),
        (
            "signature-input".into(),
            format!("woodpecker-ci-extensions={params}"),
        ),
        (
            "signature".into(),
            format!("woodpecker-ci-extensions=:{signature}:"),
        ),
    ]
}
