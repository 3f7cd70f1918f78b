//! Which clone URLs `serve` fetches: each URL is normalised (scheme and host
//! in lower case, default ports dropped, percent-decoding, `.` and `..`
//! resolved) and then compared with the `--allow-url` prefixes by whole
//! path segments. What is fetched is the normalised URL, so git never sees
//! a `..` the comparison did not. Pure: no I/O.

use std::fmt;

/// A clone URL in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneUrl {
    /// `file`, `http` or `https`.
    scheme: String,
    /// Lower-case host with a port other than the scheme's default;
    /// empty for `file`.
    authority: String,
    /// Decoded path segments, none empty, `.` or `..`.
    segments: Vec<String>,
}

/// Why a URL cannot be used: a short fixed text, never the URL itself.
pub type Refusal = &'static str;

impl CloneUrl {
    /// Parses and normalises `raw`: a `file:`, `http:` or `https:` URL, or
    /// an absolute local path (taken as a `file:` URL).
    pub fn parse(raw: &str) -> Result<CloneUrl, Refusal> {
        if raw
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
        {
            return Err("it contains spaces, control characters or backslashes");
        }
        if raw.contains(['?', '#']) {
            return Err("it has a query or a fragment");
        }
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None if raw.starts_with('/') => ("file".to_string(), raw),
            None => return Err("it is not a file, http or https URL"),
        };
        let (authority, path) = match scheme.as_str() {
            "file" => match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, ""),
            },
            "http" | "https" => rest.split_at(rest.find('/').unwrap_or(rest.len())),
            _ => return Err("only file, http and https URLs are fetched"),
        };
        if authority.contains('@') {
            return Err("it carries credentials; set RIPPLE_GIT_USERNAME and RIPPLE_GIT_PASSWORD");
        }
        let mut authority = authority.to_ascii_lowercase();
        match scheme.as_str() {
            "file" if authority.is_empty() || authority == "localhost" => authority.clear(),
            "file" => return Err("a file URL must name no host"),
            _ if authority.is_empty() => return Err("it names no host"),
            _ => {
                let default = if scheme == "http" { ":80" } else { ":443" };
                if let Some(host) = authority.strip_suffix(default) {
                    authority = host.to_string();
                }
            }
        }
        let mut segments: Vec<String> = Vec::new();
        for raw_segment in path.split('/').filter(|s| !s.is_empty()) {
            let segment = percent_decode(raw_segment)?;
            match segment.as_str() {
                "." => {}
                ".." => {
                    segments
                        .pop()
                        .ok_or("its `..` segments climb above the root")?;
                }
                _ => segments.push(segment),
            }
        }
        Ok(CloneUrl {
            scheme,
            authority,
            segments,
        })
    }

    /// Whether this URL lies under `prefix`: the same scheme and host, and
    /// the prefix's path segments, whole, at its start.
    pub fn is_under(&self, prefix: &CloneUrl) -> bool {
        self.scheme == prefix.scheme
            && self.authority == prefix.authority
            && self.segments.starts_with(&prefix.segments)
    }
}

impl fmt::Display for CloneUrl {
    /// The URL to fetch: every segment encoded again, so that nothing
    /// decodes to a separator or a dot segment on the way.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)?;
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            f.write_str("/")?;
            for byte in segment.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
                    write!(f, "{}", byte as char)?;
                } else {
                    write!(f, "%{byte:02X}")?;
                }
            }
        }
        Ok(())
    }
}

/// Decodes `%XX` in one path segment. A decoded `/`, NUL or backslash, a
/// `%` left over (double encoding) or bytes that are not UTF-8 refuse the
/// URL: each is a way to say a different path to a later decoder.
fn percent_decode(segment: &str) -> Result<String, Refusal> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes
                .get(at + 1..at + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("it has a malformed percent escape")?;
            out.push(hex);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    if out.iter().any(|b| matches!(b, b'/' | b'\\' | b'%' | 0)) {
        return Err("it encodes a separator, a backslash or a percent sign");
    }
    String::from_utf8(out).map_err(|_| "its path is not UTF-8")
}

/// The `--allow-url` prefixes, normalised once at start.
#[derive(Debug, Clone)]
pub struct AllowList {
    prefixes: Vec<CloneUrl>,
}

impl AllowList {
    /// Parses every prefix; the error names the one that cannot be used.
    pub fn new(prefixes: &[String]) -> Result<AllowList, String> {
        let prefixes = prefixes
            .iter()
            .map(|p| CloneUrl::parse(p).map_err(|why| format!("--allow-url `{p}`: {why}")))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { prefixes })
    }

    /// The URL to fetch for `raw`, when it lies under an allowed prefix.
    pub fn check(&self, raw: &str) -> Result<CloneUrl, Refusal> {
        let url = CloneUrl::parse(raw)?;
        if self.prefixes.iter().any(|prefix| url.is_under(prefix)) {
            Ok(url)
        } else {
            Err("it is under no --allow-url prefix")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(prefixes: &[&str], url: &str) -> Result<String, Refusal> {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        AllowList::new(&prefixes)
            .unwrap()
            .check(url)
            .map(|u| u.to_string())
    }

    #[test]
    fn urls_are_normalised_before_comparing() {
        let git = ["https://git.example.org/team"];
        for (url, fetched) in [
            (
                "https://git.example.org/team/a.git",
                "https://git.example.org/team/a.git",
            ),
            (
                "HTTPS://Git.Example.ORG:443/team/a.git",
                "https://git.example.org/team/a.git",
            ),
            (
                "https://git.example.org/team//./x/../a.git",
                "https://git.example.org/team/a.git",
            ),
            (
                "https://git.example.org/%74eam/a%20b.git",
                "https://git.example.org/team/a%20b.git",
            ),
            (
                "https://git.example.org/team",
                "https://git.example.org/team",
            ),
        ] {
            assert_eq!(allowed(&git, url).as_deref(), Ok(fetched), "{url}");
        }
    }

    /// Issue 13.5: `starts_with` let `..`, `%2e%2e` and a longer name past
    /// the prefix.
    #[test]
    fn nothing_escapes_a_prefix() {
        let base = ["file:///srv/allowed", "https://git.example.org/team/"];
        for url in [
            "file:///srv/allowed/../other/secret.git",
            "file:///srv/allowed/%2e%2e/other/secret.git",
            "file:///srv/allowed/%2E%2E/other/secret.git",
            "file:///srv/allowed/.%2e/other/secret.git",
            "file:///srv/allowed/%252e%252e/other/secret.git",
            "file:///srv/allowed/x%2f..%2f..%2fother",
            "file:///srv/allowed-not/secret.git",
            "file:///srv/allowed/a/../../other",
            "file://evil/srv/allowed/x.git",
            "/srv/allowed/../other",
            "https://git.example.org/team-b/x.git",
            "https://git.example.org.evil.com/team/x.git",
            "https://git.example.org@evil.com/team/x.git",
            "https://git.example.org:8443/team/x.git",
            "http://git.example.org/team/x.git",
            "https://git.example.org/team/x.git?upload-pack=x",
            "https://git.example.org/team/x\\..\\..\\y",
            "ssh://git.example.org/team/x.git",
            "git@git.example.org:team/x.git",
            "https://git.example.org/team/%zz",
            "https://git.example.org/../../team/x",
        ] {
            assert!(allowed(&base, url).is_err(), "{url} was allowed");
        }
        assert!(allowed(&base, "file:///srv/allowed/sub/ok.git").is_ok());
        assert!(allowed(&base, "/srv/allowed/ok.git").is_ok());
        assert!(allowed(&base, "file://localhost/srv/allowed/ok.git").is_ok());
    }

    #[test]
    fn a_bare_scheme_allows_all_of_it() {
        assert!(allowed(&["file://"], "file:///tmp/x/y.git").is_ok());
        assert!(allowed(&["file://"], "https://h/x").is_err());
    }

    #[test]
    fn unusable_prefixes_are_named() {
        let err = AllowList::new(&["git@h:x".to_string()]).unwrap_err();
        assert!(err.starts_with("--allow-url `git@h:x`"), "{err}");
    }
}
