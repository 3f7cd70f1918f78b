//! The one path-pattern rule used everywhere (`paths`, `global_paths`).
//!
//! A pattern without glob characters is a path prefix, like a git pathspec;
//! a pattern with glob characters is a glob over the whole path, where `*`
//! and `?` never cross `/`. A leading `!` excludes. Matching is
//! case-sensitive and byte-exact. No I/O here.

use compact_str::CompactString;
use globset::{Glob, GlobBuilder};

/// One validated entry of a `paths` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// Written with a leading `!`: removes matches from the service.
    pub exclude: bool,
    /// What the pattern matches, after the `!` and normalisation.
    pub body: PatternBody,
    /// How long a glob's [`PathPattern::key`] is, told by the scan that
    /// parsed it: every pattern's key is asked for when a manifest is read
    /// and when a matcher is built, and scanning each glob again for it
    /// was about 240 instructions a service at 20,000 services.
    key_len: u16,
}

/// The two shapes a pattern can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternBody {
    /// Matches this path and everything below it.
    Prefix(CompactString),
    /// Matches whole paths; the string is the glob source.
    Glob(CompactString),
}

impl PathPattern {
    /// Parses and validates one pattern; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        PathPattern::parse_with(raw, |text| CompactString::from(text))
    }

    /// [`PathPattern::parse`], its text (a piece of `raw`) owned by `own`.
    pub fn parse_with(
        raw: &str,
        own: impl FnOnce(&str) -> CompactString,
    ) -> Result<PathPattern, String> {
        PathPattern::parse_scanned(raw, Scanned::of(raw), own)
    }

    /// [`PathPattern::parse_with`], `raw` already [`Scanned`]. What the
    /// scan says of `raw` holds for the pattern it gives: that is `raw`
    /// less a leading `!`, `./` and a trailing `/`, none of them special,
    /// and a `DIR/**` written `./DIR/**` or `!DIR/**` is one still.
    pub fn parse_scanned(
        raw: &str,
        scanned: Scanned,
        own: impl FnOnce(&str) -> CompactString,
    ) -> Result<PathPattern, String> {
        let (exclude, rest) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        // `./src` and `src/` mean `src`: people write both.
        let mut text = rest;
        while let Some(after) = text.strip_prefix("./") {
            text = after;
        }
        while text.len() > 1 && text.ends_with('/') {
            text = &text[..text.len() - 1];
        }
        if text.is_empty() {
            return Err("empty path pattern".to_string());
        }
        if text.len() > MAX_PATTERN_BYTES {
            let shown: String = text.chars().take(40).collect();
            return Err(format!(
                "path pattern `{shown}…` is {} bytes long; at most {MAX_PATTERN_BYTES} are allowed",
                text.len()
            ));
        }
        if text.starts_with('/') {
            return Err(format!(
                "path pattern `{raw}` is absolute; paths are relative to the repository root"
            ));
        }
        // Most patterns have no `..` at all, which the scan tells.
        if scanned.dot_pair && text.split('/').any(|part| part == "..") {
            return Err(format!(
                "path pattern `{raw}` leaves the repository with `..`"
            ));
        }
        // The scan's first special byte, in `text`: what was taken off
        // before it (`!`, `./`) holds none.
        let taken = text.as_ptr() as usize - raw.as_ptr() as usize;
        let first = (scanned.first).and_then(|at| at.checked_sub(taken));
        let (body, key_len) = match scanned.shape {
            Shape::Path => (PatternBody::Prefix(own(text)), text.len()),
            // `DIR/**` (or `**` once `./` is taken off).
            Shape::Below => (
                PatternBody::Glob(own(text)),
                literal_directory_len(text, first),
            ),
            Shape::Glob => {
                if !globset_accepts(text) {
                    compile(text).map_err(|err| format!("invalid glob `{raw}`: {}", err.kind()))?;
                }
                (
                    PatternBody::Glob(own(text)),
                    literal_directory_len(text, first),
                )
            }
        };
        Ok(PathPattern {
            exclude,
            body,
            // At most `MAX_PATTERN_BYTES`, checked above.
            key_len: key_len as u16,
        })
    }
}

impl PathPattern {
    /// The directory a path must be in (or be) for this pattern to take
    /// it: a prefix itself, or a glob's literal directory.
    pub fn key(&self) -> &str {
        match &self.body {
            PatternBody::Prefix(prefix) => prefix,
            // A piece of the glob up to a `/`, an ASCII byte.
            PatternBody::Glob(glob) => &glob[..usize::from(self.key_len)],
        }
    }
}

/// The directory every path a glob matches is in: the glob's start up to
/// its last `/` before any special character (`""` when there is none).
/// A parsed pattern knows its own ([`PathPattern::key`]); this scans the
/// glob again, for the tests to check that against.
#[cfg(test)]
pub fn literal_directory(glob: &str) -> &str {
    &glob[..literal_directory_len(glob, Scanned::of(glob).first)]
}

/// How long [`literal_directory`] of `glob` is, `first` being where its
/// first special byte is.
fn literal_directory_len(glob: &str, first: Option<usize>) -> usize {
    // All seven special characters are ASCII, so where one is is a
    // character boundary. Searched back byte by byte: the `/` is most
    // often just before, where a vectorised search costs more to set up.
    let literal = first.map_or(glob, |end| &glob[..end]);
    literal.bytes().rposition(|b| b == b'/').unwrap_or(0)
}

/// What a pattern's text (after any `!`) is, told in one pass over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No glob character: a path prefix.
    Path,
    /// `DIR/**` with a literal `DIR`: every path below `DIR`. Most
    /// services' globs are of this shape and each one's own, so they
    /// are worth neither a cache nor a check of their braces.
    Below,
    /// Any other glob.
    Glob,
}

/// What one pass over a pattern's text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// The pattern's shape.
    pub shape: Shape,
    /// Where its first byte special to a glob (one that makes a pattern
    /// a glob, or `\`) is.
    first: Option<usize>,
    /// Whether it has a byte that makes it a glob.
    glob: bool,
    /// Whether it holds `..` anywhere (a `..` part only then).
    dot_pair: bool,
}

impl Scanned {
    /// Scans `text` once, 16 bytes at a time on x86-64 (SSE2, which every
    /// x86-64 processor has; a loop took 13 instructions a byte): where
    /// its first special byte is, whether any is a glob's, and whether
    /// two dots meet. Reading a service's `DIR/**` told its shape twice
    /// and searched it for dots with memchr, 300 instructions a pattern.
    #[inline]
    pub fn of(text: &str) -> Scanned {
        Scanned::of_bytes(text.as_bytes())
    }

    #[inline(always)]
    fn of_bytes(bytes: &[u8]) -> Scanned {
        let (mut first, mut glob, mut dot_pair, mut dot_before) = (None, false, false, false);
        let mut look = |at: usize, globs: u32, backslashes: u32, dots: u32, width: u32| {
            let special = globs | backslashes;
            if first.is_none() && special != 0 {
                first = Some(at + special.trailing_zeros() as usize);
            }
            glob |= globs != 0;
            dot_pair |= dots & (dots >> 1) != 0 || (dot_before && dots & 1 != 0);
            dot_before = dots >> (width - 1) & 1 != 0;
        };
        #[cfg(target_arch = "x86_64")]
        {
            let (blocks, rest) = bytes.as_chunks::<16>();
            let mut block_bits = |at: usize, block: &[u8; 16]| {
                let loaded = crate::bytes::Block::load(block);
                let backslashes = loaded.eq(b'\\').bits();
                look(
                    at,
                    sse2_glob_bytes(block),
                    backslashes,
                    loaded.eq(b'.').bits(),
                    16,
                );
            };
            for (k, block) in blocks.iter().enumerate() {
                block_bits(16 * k, block);
            }
            if !rest.is_empty() {
                // Zeros after the rest: no zero byte is special or a dot.
                let mut last = [0u8; 16];
                last[..rest.len()].copy_from_slice(rest);
                block_bits(16 * blocks.len(), &last);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (at, &byte) in bytes.iter().enumerate() {
            let bit = |yes: bool| u32::from(yes);
            look(
                at,
                bit(is_glob_byte(byte)),
                bit(byte == b'\\'),
                bit(byte == b'.'),
                1,
            );
        }
        let shape = match first {
            None => Shape::Path,
            // The first special byte is the `**` of a final `/**`, after
            // a directory of at least one byte.
            Some(at) if at >= 2 && at + 2 == bytes.len() && bytes.ends_with(b"/**") => Shape::Below,
            // `\\` escapes only in a glob.
            Some(_) if glob => Shape::Glob,
            Some(_) => Shape::Path,
        };
        Scanned {
            shape,
            first,
            glob,
            dot_pair,
        }
    }
}

impl std::fmt::Display for PathPattern {
    /// As written in the manifest, normalised (`!` kept).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            PatternBody::Prefix(text) | PatternBody::Glob(text) => text,
        };
        write!(f, "{}{body}", if self.exclude { "!" } else { "" })
    }
}

/// The longest pattern accepted. Validation only parses a glob; the graph
/// compiles it to a regex when a changed path reaches it, and globset
/// panics on a regex over its size limit, which a glob of about 100 kB
/// reaches. Every glob of this length compiles (a test checks the worst
/// shapes), so what validation accepts, matching can build.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// Whether a pattern is a glob (else a path prefix).
pub fn is_glob(pattern: &str) -> bool {
    Scanned::of(pattern).glob
}

/// Whether `byte` makes a pattern a glob.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn is_glob_byte(byte: u8) -> bool {
    matches!(byte, b'*' | b'?' | b'[' | b']' | b'{' | b'}')
}

/// A bit for each byte of `block` that makes a pattern a glob.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_glob_bytes(block: &[u8; 16]) -> u32 {
    let block = crate::bytes::Block::load(block);
    let stars = block.eq(b'*') | block.eq(b'?');
    let brackets = block.eq(b'[') | block.eq(b']');
    (stars | brackets | block.eq(b'{') | block.eq(b'}')).bits()
}

/// Whether globset surely accepts `glob`: it has no class and no escape
/// (no `[`, `]` or `\\`), and its braces pair up. globset refuses a glob
/// only for an unclosed or bad class, a dangling escape or unpaired
/// braces, so such a glob is valid without building it: building makes
/// its regex's text, which was most of reading a manifest whose services
/// each have a glob of their own (`tests/NAME/**/*.py`). What this does not
/// vouch for is built, for globset to decide and say why.
fn globset_accepts(glob: &str) -> bool {
    let mut open = 0usize;
    for &byte in glob.as_bytes() {
        match byte {
            b'[' | b']' | b'\\' => return false,
            b'{' => open += 1,
            b'}' if open == 0 => return false,
            b'}' => open -= 1,
            _ => {}
        }
    }
    open == 0
}

/// Builds a glob with the rule's options; the graph compiles all of them into
/// one set with these same options.
pub fn compile(glob: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Every prefix of `path` at a `/` boundary, ending with the whole path:
/// `a/b/c` gives `a`, `a/b`, `a/b/c`.
pub fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(at, _)| &path[..at])
        .chain(std::iter::once(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, path: &str) -> bool {
        let parsed = PathPattern::parse(pattern).expect("valid pattern");
        match parsed.body {
            PatternBody::Prefix(prefix) => prefixes(path).any(|p| p == prefix),
            PatternBody::Glob(glob) => compile(&glob).unwrap().compile_matcher().is_match(path),
        }
    }

    macro_rules! matches {
        ($($pattern:expr, $path:expr => $want:expr;)*) => {
            $(assert_eq!(is_match($pattern, $path), $want, "{} vs {}", $pattern, $path);)*
        };
    }

    #[test]
    fn prefix_patterns_match_like_pathspecs() {
        matches! {
            "src/backend", "src/backend" => true;
            "src/backend", "src/backend/x.go" => true;
            "src/backend", "src/backend/a/b/c" => true;
            "src/backend", "src/backend2/x.go" => false;
            "src/backend", "src/backen" => false;
            "src/backend/", "src/backend/x" => true;
            "./src", "src/x" => true;
            "Src", "src/x" => false;
        }
    }

    #[test]
    fn globs_match_whole_paths() {
        matches! {
            "*.md", "README.md" => true;
            "*.md", "docs/README.md" => false;
            "**/*.md", "docs/a/README.md" => true;
            "**/*.md", "README.md" => true;
            "src/*/main.go", "src/a/main.go" => true;
            "src/*/main.go", "src/a/b/main.go" => false;
            "src/**/main.go", "src/a/b/main.go" => true;
            "web/{app,lib}/**", "web/lib/x.ts" => true;
            "web/{app,lib}/**", "web/other/x.ts" => false;
            "file?.txt", "file1.txt" => true;
            "file?.txt", "file/.txt" => false;
            "*.MD", "a.md" => false;
        }
    }

    /// Issue 8.5: DESIGN's rule for `./`, a trailing `/` and `/` inside
    /// `{a,b}`, on prefixes and globs alike.
    #[test]
    fn leading_dot_slash_trailing_slash_and_slashes_in_alternatives() {
        matches! {
            "./src/*.go", "src/a.go" => true;
            "././src", "src/a.go" => true;
            "!./src", "src/a.go" => true;
            "src/**/", "src/a/b.go" => true;
            "src/*/", "src/a" => true;
            "src/*/", "src/a/b" => false;
            "{src/ad,src/cart}/**", "src/cart/x.go" => true;
            "{src/ad,src/cart}/**", "src/ad/y/z.go" => true;
            "{src/ad,src/cart}/**", "src/other/x.go" => false;
            "src/{ad,cart/api}/*.go", "src/cart/api/m.go" => true;
            "./{src/ad,lib}/", "lib/x" => false;
            "./{src/ad,lib}/**", "lib/x" => true;
        }
    }

    #[test]
    fn exclusions_are_marked() {
        let p = PathPattern::parse("!**/*.md").unwrap();
        assert!(p.exclude);
        assert_eq!(p.body, PatternBody::Glob("**/*.md".into()));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert_eq!(PathPattern::parse("").unwrap_err(), "empty path pattern");
        assert_eq!(PathPattern::parse("!").unwrap_err(), "empty path pattern");
        assert!(PathPattern::parse("/etc").unwrap_err().contains("absolute"));
        assert!(PathPattern::parse("a/../b").unwrap_err().contains(".."));
        assert!(
            PathPattern::parse("src/{a,b")
                .unwrap_err()
                .starts_with("invalid glob")
        );
        assert!(
            PathPattern::parse("src/[a")
                .unwrap_err()
                .starts_with("invalid glob")
        );
    }

    /// Issue 13.8: an oversized glob once passed validation and then
    /// panicked in globset's matcher build.
    #[test]
    fn every_accepted_glob_compiles_and_longer_ones_are_refused() {
        for unit in ["*a", "[a-z]", "{a,b}/", "**/x", "?", "[!a]*", "{*,?}"] {
            let mut glob = unit.repeat(MAX_PATTERN_BYTES / unit.len());
            glob.truncate(MAX_PATTERN_BYTES);
            while PathPattern::parse(&glob).is_err() {
                glob.pop(); // a cut in the middle of `[...]` or `{...}`
            }
            compile(&glob).unwrap().compile_matcher();
            let too_long = unit.repeat(MAX_PATTERN_BYTES / unit.len() + 1);
            let err = PathPattern::parse(&too_long).unwrap_err();
            assert!(err.contains("at most 4096"), "{err}");
            assert!(err.len() < 200, "{err}");
        }
    }

    /// Each special byte makes a glob; every other ASCII byte, and other
    /// characters, leave a plain path.
    #[test]
    fn a_glob_is_told_by_any_special_byte() {
        for byte in 0..=127u8 {
            let text = format!("services/a{}b", byte as char);
            assert_eq!(is_glob(&text), b"*?[]{}".contains(&byte), "{byte}");
            assert_eq!(is_glob_byte(byte), b"*?[]{}".contains(&byte), "{byte}");
        }
        // Wherever the byte is: in a whole block, in the last bytes read
        // again, in a short pattern's padded block.
        for len in 1..50 {
            for place in 0..len {
                for byte in *b"*?[]{}a/" {
                    let mut text = vec![b's'; len];
                    text[place] = byte;
                    let text = String::from_utf8(text).unwrap();
                    assert_eq!(is_glob(&text), is_glob_byte(byte), "{text}");
                }
            }
        }
        for special in ["*", "x?", "[ab]", "a/{b,c}", "a]", "}"] {
            assert!(is_glob(special), "{special}");
        }
        assert!(!is_glob("services/é/ü"));
        assert!(!is_glob(""));
    }

    /// The first special byte is found wherever it is, first among
    /// several: in a whole block, or in the last bytes, read as a block
    /// padded with zeros.
    #[test]
    fn the_first_special_byte_is_found_wherever_it_is() {
        for len in 1..50 {
            for place in 0..len {
                for byte in *b"*?[]{}\\a/" {
                    let mut text = vec![b's'; len];
                    text[place] = byte;
                    // A later special byte, which must not be taken first.
                    if place + 1 < len {
                        text[len - 1] = b'*';
                    }
                    let want = text.iter().position(|&b| is_glob_byte(b) || b == b'\\');
                    assert_eq!(Scanned::of_bytes(&text).first, want, "{len} {place} {byte}");
                }
            }
        }
        assert_eq!(Scanned::of_bytes(b"").first, None);
    }

    #[test]
    fn a_patterns_key_is_its_prefix_or_its_globs_literal_directory() {
        for raw in [
            "services/api/**",
            "!services/api/**",
            "./services/api/**",
            "!././a/**",
            "./**",
            "!./**",
            "**",
            "a/**/*.py",
            "./a/b/*.go",
            "!./a/{b,c}/d/**",
            "a\\*b/c/*",
            "*.md",
            "!**/*.md",
            "a/b/",
            "./a/b",
            "!a",
            "a\\b/c",
            "a/b*/",
            "a/b/c*//",
            "./a/*/b/c.go",
            "!./x/?/y/z/w",
        ] {
            let pattern = PathPattern::parse(raw).unwrap();
            let want = match &pattern.body {
                PatternBody::Prefix(prefix) => prefix.as_str(),
                PatternBody::Glob(glob) => literal_directory(glob),
            };
            assert_eq!(pattern.key(), want, "{raw}");
        }
    }

    #[test]
    fn a_pattern_is_told_a_path_a_glob_below_a_directory_or_another_glob() {
        assert_eq!(literal_directory("services/api/**"), "services/api");
        let long = "services/very-long-directory-name/of/a/team";
        for (text, want) in [
            ("services/api/**", Shape::Below),
            ("a/**", Shape::Below),
            (&format!("{long}/**"), Shape::Below),
            ("**", Shape::Glob),
            ("/**", Shape::Glob),
            ("a/**/*.py", Shape::Glob),
            ("a/b**", Shape::Glob),
            ("a*/**", Shape::Glob),
            ("a/{b,c}/**", Shape::Glob),
            ("a\\*/**", Shape::Glob),
            ("a/*", Shape::Glob),
            ("a", Shape::Path),
            (long, Shape::Path),
            ("a\\b", Shape::Path),
            ("a\\b/**", Shape::Glob),
        ] {
            let shape = Scanned::of(text).shape;
            assert_eq!(shape, want, "{text}");
            assert_eq!(shape != Shape::Path, is_glob(text), "{text}");
        }
        // It is a glob all the same, read as one and valid.
        let parsed = PathPattern::parse("services/api/**").unwrap();
        assert_eq!(parsed.body, PatternBody::Glob("services/api/**".into()));
        assert_eq!(parsed.key(), "services/api");
        assert!(is_match("services/api/**", "services/api/x/y.go"));
        assert!(!is_match("services/api/**", "services/api2/x.go"));
        assert!(!is_match("services/api/**", "services/api"));
    }

    /// One scan tells what separate searches would: where the first
    /// special byte is (so the shape), whether a glob byte is there, and
    /// whether two dots meet, wherever they fall in the blocks.
    #[test]
    fn one_scan_tells_the_shape_and_whether_dots_meet() {
        const ALPHABET: &[u8] = b"a/.*\\{}";
        let mut seed = 7u64;
        for len in 1..50 {
            for _ in 0..200 {
                let text: String = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ALPHABET[(seed >> 33) as usize % ALPHABET.len()] as char
                    })
                    .collect();
                let scanned = Scanned::of(&text);
                assert_eq!(scanned.dot_pair, text.contains(".."), "{text}");
                let first = text.bytes().position(|b| is_glob_byte(b) || b == b'\\');
                let want = match first {
                    None => Shape::Path,
                    Some(at) if at >= 2 && at + 2 == len && text.ends_with("/**") => Shape::Below,
                    // Told byte by byte, not by the scan under test.
                    Some(_) if text.bytes().any(is_glob_byte) => Shape::Glob,
                    Some(_) => Shape::Path,
                };
                assert_eq!(scanned.shape, want, "{text}");
            }
            // Two dots across every place, a block's end among them.
            for at in 0..len.saturating_sub(1) {
                let mut text = vec![b'a'; len];
                text[at..at + 2].copy_from_slice(b"..");
                let text = String::from_utf8(text).unwrap();
                assert!(Scanned::of(&text).dot_pair, "{text}");
            }
        }
        // What it tells is what parsing needs: `..` refused, `DIR/**`
        // written with `./` or `!` still a glob below the directory.
        assert!(PathPattern::parse("a/../b").is_err());
        assert!(PathPattern::parse("a/..b").is_ok());
        for raw in ["./a/**", "!a/**", "a/**/"] {
            let parsed = PathPattern::parse(raw).unwrap();
            assert_eq!(parsed.body, PatternBody::Glob("a/**".into()), "{raw}");
        }
    }

    /// What the check without globset accepts, globset accepts too: every
    /// pattern of up to five bytes from the glob alphabet, and random
    /// longer ones.
    #[test]
    fn a_glob_vouched_for_is_one_globset_builds() {
        const ALPHABET: &[u8] = b"*?[]{},\\a/!-";
        let mut vouched = 0;
        let mut check = |glob: &[u8]| {
            let glob = std::str::from_utf8(glob).unwrap();
            if globset_accepts(glob) {
                vouched += 1;
                assert!(compile(glob).is_ok(), "{glob}");
            }
        };
        let mut glob = Vec::new();
        fn all(glob: &mut Vec<u8>, left: usize, check: &mut dyn FnMut(&[u8])) {
            check(glob);
            if left == 0 {
                return;
            }
            for &byte in ALPHABET {
                glob.push(byte);
                all(glob, left - 1, check);
                glob.pop();
            }
        }
        all(&mut glob, 5, &mut check);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            glob.clear();
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            for k in 0..(state >> 58) as usize + 6 {
                let pick = (state.rotate_left(7 * k as u32) >> 59) as usize;
                glob.push(ALPHABET[pick % ALPHABET.len()]);
            }
            check(&glob);
        }
        assert!(vouched > 20_000, "{vouched}");
        // And what it leaves to globset is still refused or accepted there.
        assert!(PathPattern::parse("src/{a,b}}").is_err());
        assert!(PathPattern::parse("src/[!a]/{b,{c,d}}").is_ok());
        assert!(PathPattern::parse("src/*\\").is_err());
    }

    #[test]
    fn prefixes_walk_down_the_path() {
        assert_eq!(prefixes("a/b/c").collect::<Vec<_>>(), ["a", "a/b", "a/b/c"]);
        assert_eq!(prefixes("a").collect::<Vec<_>>(), ["a"]);
    }
}
