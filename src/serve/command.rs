//! `ripple serve` from the command line: which extension, its key or
//! secret, and the server's settings, checked before anything starts.

use std::path::{Path, PathBuf};

use super::Speaks;
use super::allow::AllowList;
use crate::backend;
use crate::cli::ServeArgs;
use crate::error::{Error, Result};
use crate::history::Retention;

/// `ripple serve`: Drone's configuration extension, or Woodpecker's with
/// `--ci woodpecker`.
pub fn command(ci: Option<&str>, args: ServeArgs) -> Result<()> {
    let speaks = match ci.unwrap_or(backend::DEFAULT) {
        "drone" => Speaks::Drone {
            secret: serve_secret(
                args.secret_file.as_deref(),
                std::env::var("RIPPLE_SECRET").ok(),
            )?,
        },
        "woodpecker" => Speaks::Woodpecker {
            key: woodpecker_key(args.public_key.as_deref())?,
        },
        other => {
            return Err(Error::Usage {
                message: format!("`serve` has no configuration extension for `{other}`"),
                hint: Some(
                    "`serve` speaks Drone's (`--ci drone`) and Woodpecker's (`--ci woodpecker`); \
                     for other CI systems run `ripple plan` as the pipeline's first step"
                        .into(),
                ),
            });
        }
    };
    if args.allow_urls.is_empty() {
        return Err(Error::Usage {
            message: "no clone URL is allowed".into(),
            hint: Some(
                "pass `--allow-url https://git.example.org/` for each place repositories live"
                    .into(),
            ),
        });
    }
    super::run(super::ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        allow: AllowList::new(&args.allow_urls).map_err(|message| Error::Usage {
            message,
            hint: Some(
                "give file:, http: or https: URLs (or absolute paths), without credentials".into(),
            ),
        })?,
        speaks,
        // Secrets come from the environment only, never from flags.
        credentials: std::env::var("RIPPLE_GIT_USERNAME")
            .ok()
            .zip(std::env::var("RIPPLE_GIT_PASSWORD").ok()),
        retention: Retention {
            max_records: args.history_max_records,
            max_age: args.history_max_age,
        },
        answer_timeout: args.answer_timeout,
        read_timeout: args.read_timeout,
        max_connections: args.max_connections as usize,
        max_fetches: args.max_fetches as usize,
    })
}

/// Woodpecker's public key, from `--public-key` (the PEM Woodpecker
/// publishes at `/api/signature/public-key`, or a file holding it).
fn woodpecker_key(file: Option<&Path>) -> Result<ed25519_dalek::VerifyingKey> {
    let Some(path) = file else {
        return Err(Error::Usage {
            message: "no key to verify Woodpecker's requests with".into(),
            hint: Some(
                "save Woodpecker's `/api/signature/public-key` to a file and pass \
                 `--public-key FILE`"
                    .into(),
            ),
        });
    };
    // The PEM itself (from RIPPLE_PUBLIC_KEY, say), or a file holding it.
    let given = path
        .to_str()
        .filter(|text| text.trim_start().starts_with("-----BEGIN"));
    let (pem, shown) = match given {
        Some(pem) => (pem.to_string(), "the key given".to_string()),
        None => (read(path)?, format!("`{}`", path.display())),
    };
    super::rfc9421::public_key(&pem).map_err(|why| Error::Usage {
        message: format!("{shown}: {why}"),
        hint: Some("use the PEM that Woodpecker serves at `/api/signature/public-key`".into()),
    })
}

/// The shortest secret `serve` accepts: a guessable HMAC key would let
/// anyone sign requests.
pub const MIN_SECRET_BYTES: usize = 16;

/// The secret shared with Drone, from `--secret-file` (which wins) or
/// `RIPPLE_SECRET`; surrounding whitespace is not part of it. Empty or short
/// secrets are refused from every source: an empty key signs anything.
fn serve_secret(file: Option<&Path>, variable: Option<String>) -> Result<Vec<u8>> {
    let (secret, source) = match (file, variable) {
        (Some(path), _) => (
            read(path)?.trim().to_string(),
            format!("`{}`", path.display()),
        ),
        (None, Some(value)) => (value.trim().to_string(), "RIPPLE_SECRET".to_string()),
        (None, None) => {
            return Err(Error::Usage {
                message: "no secret to verify Drone's requests with".into(),
                hint: Some(
                    "set RIPPLE_SECRET or pass `--secret-file FILE` (Drone's DRONE_YAML_SECRET)"
                        .into(),
                ),
            });
        }
    };
    if secret.len() < MIN_SECRET_BYTES {
        let what = if secret.is_empty() {
            "is empty".to_string()
        } else {
            format!("has {} bytes", secret.len())
        };
        return Err(Error::Usage {
            message: format!(
                "the secret from {source} {what}: at least {MIN_SECRET_BYTES} are required"
            ),
            hint: Some(
                "generate one with `openssl rand -hex 32` and give the same to Drone as \
                 DRONE_YAML_SECRET"
                    .into(),
            ),
        });
    }
    Ok(secret.into_bytes())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: PathBuf::from(path),
        source,
    })
}
