//! A container registry's HTTP API v2, for `ripple promote`: read a
//! manifest (or index) by tag, write the same bytes under other tags, and
//! read an image's labels. No layer moves, so the digest stays the same.
//! The protocol (the bearer-token challenge, basic auth, media types) is
//! `oci-client`'s; this module picks the scheme, finds credentials, and
//! turns the registry's refusals into errors a person can act on.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::error::{Error, Result};

/// Where credentials come from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `RIPPLE_REGISTRY_USERNAME` / `RIPPLE_REGISTRY_PASSWORD`.
    Environment,
    /// A Docker `config.json`.
    DockerConfig(PathBuf),
    /// None found: anonymous.
    Anonymous,
}

/// What the client needs to know besides the image.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Registries spoken to over plain HTTP although not on loopback
    /// (`--insecure-registry`, `RIPPLE_INSECURE_REGISTRIES`).
    pub insecure: Vec<String>,
    /// `RIPPLE_REGISTRY_USERNAME` and `_PASSWORD`, when both are set.
    pub credentials: Option<(String, String)>,
    /// The Docker configuration directory (`DOCKER_CONFIG`, else
    /// `~/.docker`).
    pub docker_config: Option<PathBuf>,
}

/// A manifest or index as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its bytes, written back unchanged.
    pub bytes: Vec<u8>,
    /// `sha256:...` of those bytes.
    pub digest: String,
    /// Its media type (the `Content-Type` to write it with).
    pub media_type: String,
}

impl Manifest {
    /// Whether it is an index of per-platform manifests.
    pub fn is_index(&self) -> bool {
        self.media_type == oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE
            || self.media_type == oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE
    }
}

/// The media types ripple reads and writes back.
const ACCEPTED: &[&str] = &[
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// The label that names the commit an image was built from.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// One image repository on one registry.
pub struct Repository {
    client: Client,
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
    /// `host/name`, without a tag.
    name: String,
    /// The registry host, as spoken to.
    host: String,
    /// Where the credentials came from, for messages.
    pub credentials: CredentialSource,
}

/// Whether a registry host is on this machine: Docker speaks plain HTTP to
/// those.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Repository {
    /// The repository of `image` (`host/name`, no tag), with credentials
    /// from `settings`.
    pub fn open(image: &str, settings: &Settings) -> Result<Repository> {
        let reference = parse(image, "latest")?;
        let host = reference.resolve_registry().to_string();
        let plain = is_loopback(&host) || settings.insecure.contains(&host);
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![host.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let (auth, credentials) = credentials_for(reference.registry(), &host, settings);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                action: "start the registry client",
                path: PathBuf::from(&host),
                source,
            })?;
        Ok(Repository {
            client: Client::new(config),
            auth,
            runtime,
            name: format!("{}/{}", reference.registry(), reference.repository()),
            host,
            credentials,
        })
    }

    /// `host/name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name:tag`, or `name@digest` for a digest.
    fn reference(&self, tag: &str) -> Result<Reference> {
        if tag.starts_with("sha256:") {
            let text = format!("{}@{tag}", self.name);
            return text.parse::<Reference>().map_err(|e| Error::Usage {
                message: format!("`{text}` is not an image reference: {e}"),
                hint: None,
            });
        }
        parse(&self.name, tag)
    }

    /// Asks for a token that may push (basic auth needs none): the registry
    /// says which scheme in its challenge.
    pub fn authenticate(&self) -> Result<()> {
        let reference = self.reference("latest")?;
        self.runtime
            .block_on(
                self.client
                    .auth(&reference, &self.auth, RegistryOperation::Push),
            )
            .map(|_| ())
            .map_err(|e| self.error(e, "log in to"))
    }

    /// The manifest `tag` names; `None` when the registry has no such tag.
    pub fn get(&self, tag: &str) -> Result<Option<Manifest>> {
        let reference = self.reference(tag)?;
        let pulled = self.runtime.block_on(
            self.client
                .pull_manifest_raw(&reference, &self.auth, ACCEPTED),
        );
        match pulled {
            Ok((bytes, digest)) => {
                let media_type = media_type(&bytes);
                Ok(Some(Manifest {
                    bytes: bytes.to_vec(),
                    digest,
                    media_type,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e, &format!("read `{}:{tag}` from", self.name))),
        }
    }

    /// Writes `manifest` under `tag`; the registry already holds everything
    /// it refers to.
    pub fn put(&self, tag: &str, manifest: &Manifest) -> Result<()> {
        let reference = self.reference(tag)?;
        let content_type = manifest.media_type.parse().map_err(|_| Error::Registry {
            message: format!("`{}` has a media type no HTTP header can carry", self.name),
            hint: None,
            unreachable: false,
        })?;
        self.runtime
            .block_on(self.client.push_manifest_raw(
                &reference,
                manifest.bytes.clone(),
                content_type,
            ))
            .map(|_| ())
            .map_err(|e| self.error(e, &format!("write `{}:{tag}` to", self.name)))
    }

    /// The commit the image was built from, by its
    /// `org.opencontainers.image.revision` label (an index: its first
    /// image's).
    pub fn revision(&self, manifest: &Manifest) -> Result<Option<String>> {
        let image = if manifest.is_index() {
            let Some(first) = index_entries(&manifest.bytes).into_iter().next() else {
                return Ok(None);
            };
            match self.get(&first)? {
                Some(image) => image,
                None => return Ok(None),
            }
        } else {
            manifest.clone()
        };
        let Some(config) = config_digest(&image.bytes) else {
            return Ok(None);
        };
        let reference = self.reference("latest")?;
        let mut bytes: Vec<u8> = Vec::new();
        self.runtime
            .block_on(
                self.client
                    .pull_blob(&reference, config.as_str(), &mut bytes),
            )
            .map_err(|e| {
                self.error(
                    e,
                    &format!("read the configuration of `{}` from", self.name),
                )
            })?;
        Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|c| {
                c["config"]["Labels"][REVISION_LABEL]
                    .as_str()
                    .map(str::to_string)
            }))
    }

    /// The registry's refusal as something to act on.
    fn error(&self, error: OciDistributionError, doing: &str) -> Error {
        let host = &self.host;
        let login = match &self.credentials {
            CredentialSource::Environment => {
                "check RIPPLE_REGISTRY_USERNAME and RIPPLE_REGISTRY_PASSWORD".to_string()
            }
            CredentialSource::DockerConfig(path) => {
                format!("check the entry for `{host}` in {}", path.display())
            }
            CredentialSource::Anonymous => format!(
                "set RIPPLE_REGISTRY_USERNAME and RIPPLE_REGISTRY_PASSWORD, or `docker login {host}`"
            ),
        };
        let status = status_of(&error);
        let (what, hint, unreachable) = match status {
            Some(401) => (
                "the registry refused the credentials (401 Unauthorized)".to_string(),
                Some(login),
                false,
            ),
            Some(403) => (
                "the credentials may not do this (403 Forbidden)".to_string(),
                Some(format!(
                    "give the account push access to `{}`; {login}",
                    self.name
                )),
                false,
            ),
            Some(404) => (
                "the registry has no such repository (404 Not Found)".to_string(),
                Some(format!("check the image name `{}`", self.name)),
                false,
            ),
            Some(429) => (
                "the registry is limiting requests (429 Too Many Requests)".to_string(),
                Some("retry later, or log in for a higher limit".into()),
                true,
            ),
            Some(code) if code >= 500 => (
                format!("the registry failed ({code})"),
                Some("retry later; the registry's own logs say why".into()),
                true,
            ),
            _ => match &error {
                OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => (
                    format!("cannot reach the registry: {}", describe(e)),
                    Some(format!(
                        "check that `{host}` is up and the address is right; a registry that \
                         speaks plain HTTP needs `--insecure-registry {host}`"
                    )),
                    true,
                ),
                other => (describe(other), None, true),
            },
        };
        Error::Registry {
            message: format!("cannot {doing} `{host}`: {what}"),
            hint,
            unreachable,
        }
    }
}

/// The error and its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// The HTTP status a registry error stands for, as far as it can be told.
fn status_of(error: &OciDistributionError) -> Option<u16> {
    match error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|e| match e.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::Toomanyrequests => Some(429),
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::BlobUnknown => Some(404),
                _ => None,
            })
        }
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// A tag the registry does not have (the repository may not exist yet
/// either: a first push creates it).
fn is_not_found(error: &OciDistributionError) -> bool {
    status_of(error) == Some(404)
}

fn parse(image: &str, tag: &str) -> Result<Reference> {
    let text = format!("{image}:{tag}");
    text.parse::<Reference>().map_err(|e| Error::Usage {
        message: format!("`{text}` is not an image reference: {e}"),
        hint: Some("write it like `registry.example.org/team/app` (no tag)".into()),
    })
}

/// `mediaType` of a manifest; an OCI manifest may leave it out, and then
/// `manifests` tells an index from an image.
fn media_type(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value["mediaType"].as_str() {
        Some(media_type) => media_type.to_string(),
        None if value.get("manifests").is_some() => {
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()
        }
        None => oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string(),
    }
}

/// The digests of an index's images, attestations left out.
fn index_entries(bytes: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["platform"]["os"].as_str() != Some("unknown"))
        .filter_map(|m| m["digest"].as_str().map(str::to_string))
        .collect()
}

fn config_digest(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["config"]["digest"].as_str().map(str::to_string)
}

/// Credentials for `registry`: the environment's, else the Docker
/// configuration's entry for it, else none.
fn credentials_for(
    registry: &str,
    host: &str,
    settings: &Settings,
) -> (RegistryAuth, CredentialSource) {
    if let Some((user, password)) = &settings.credentials {
        return (
            RegistryAuth::Basic(user.clone(), password.clone()),
            CredentialSource::Environment,
        );
    }
    if let Some(dir) = &settings.docker_config {
        let path = dir.join("config.json");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some((user, password)) = docker_login(&text, &[registry, host])
        {
            return (
                RegistryAuth::Basic(user, password),
                CredentialSource::DockerConfig(path),
            );
        }
    }
    (RegistryAuth::Anonymous, CredentialSource::Anonymous)
}

/// The login `docker login` stored in `config.json` for any of `hosts`
/// (`auths.<host>.auth`, base64 of `user:password`). Docker Hub's entry is
/// keyed by its old index address.
fn docker_login(text: &str, hosts: &[&str]) -> Option<(String, String)> {
    use base64::Engine;
    let config: serde_json::Value = serde_json::from_str(text).ok()?;
    let auths = config["auths"].as_object()?;
    let hub = hosts
        .iter()
        .any(|h| *h == "docker.io" || h.ends_with(".docker.io"));
    let entry = auths.iter().find_map(|(key, entry)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let key = key.split('/').next().unwrap_or(key);
        (hosts.contains(&key) || (hub && key == "index.docker.io")).then_some(entry)
    })?;
    if let (Some(user), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Some((user.to_string(), password.to_string()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_spoken_to_over_http() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example.org",
            "10.0.0.1:5000",
            "localhost.example.org:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn docker_logins_are_read_by_host() {
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "registry.example.org": {"auth": "dTpwOndpdGg6Y29sb25z"},
            "127.0.0.1:5000": {"username": "plain", "password": "text"}
        }}"#;
        let login = |hosts: &[&str]| docker_login(config, hosts);
        assert_eq!(
            login(&["registry.example.org"]),
            Some(("u".into(), "p:with:colons".into()))
        );
        assert_eq!(
            login(&["docker.io", "registry-1.docker.io"]),
            Some(("hub".into(), "secret".into()))
        );
        assert_eq!(
            login(&["127.0.0.1:5000"]),
            Some(("plain".into(), "text".into()))
        );
        assert_eq!(login(&["other.example.org"]), None);
    }

    #[test]
    fn media_types_are_read_or_inferred() {
        assert_eq!(
            media_type(br#"{"mediaType": "application/vnd.docker.distribution.manifest.v2+json"}"#),
            oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE
        );
        assert_eq!(
            media_type(br#"{"manifests": []}"#),
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE
        );
        assert_eq!(
            media_type(br#"{"config": {}}"#),
            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE
        );
    }
}
