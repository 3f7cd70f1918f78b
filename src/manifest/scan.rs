//! A fast reader for the common form of a `[[service]]` table: a
//! `key = value` line per key, each value a string or an array of strings,
//! with comments and blank lines between. It builds no document tree, which
//! is most of the cost of reading a manifest of thousands of services with
//! toml-spanner (see BENCHMARKS.md).
//!
//! The inline tables of `build_args`, `tags` and sidecars it only finds the
//! end of, on their line, for the caller to read that line alone with
//! toml-spanner. Anything else (a backslash or control character in a
//! string or comment, multi-line strings, other inline tables, dotted or
//! quoted keys, a key set twice, a table header) makes it decline, and the caller
//! reads that table with toml-spanner instead. So it only has to agree
//! with TOML on the subset it accepts, which the tests check against
//! toml-spanner itself.

use std::ops::Range;

use super::Located;

/// The keys a scanned table may set: every key of a service but the last
/// few (`build_args`, `tags`, `services`), whose inline tables are left to
/// toml-spanner.
pub(super) const KEYS: &[&str] = super::SERVICE_KEYS
    .split_at(super::SERVICE_KEYS.len() - super::TREE_KEYS)
    .0;

/// The one inline-table key the scanner reads: `ripple sync` writes it on
/// every service that has discovered edges.
const DISCOVERED: &str = "discovered";

/// Keys whose one-line inline value the scanner only finds the end of, for
/// the caller to read that `key = value` line alone with toml-spanner:
/// cheaper than reading the whole table so, which a manifest written as
/// DESIGN.md's example (sidecars on services) would do for most tables.
pub(super) const INLINE_KEYS: [&str; 3] = ["build_args", "tags", "services"];

/// Where one key's value is, in [`Scanner::strings`].
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Slot {
    /// Written as an array (else a single string).
    pub list: bool,
    /// Its strings, as positions in [`Scanner::strings`].
    pub strings: Range<usize>,
    /// The value's span in the text: the string or array with its brackets.
    pub span: Range<usize>,
}

/// Scans one service table after another, reusing its buffers.
pub(super) struct Scanner<'a> {
    text: &'a str,
    /// Every string of the table last scanned, in order.
    pub strings: Vec<Located<'a>>,
    /// Each key's value in the table last scanned, by position in [`KEYS`].
    pub slots: [Option<Slot>; KEYS.len()],
    /// The generated `discovered = { source = [...], ... }` of the table
    /// last scanned: each source's name and its array.
    pub discovered: Option<Vec<(Located<'a>, Slot)>>,
    /// The list `discovered` had, emptied for the next table (one
    /// allocation for every table, not one each).
    spare: Vec<(Located<'a>, Slot)>,
    /// Each of [`INLINE_KEYS`] the table last scanned sets: the span of
    /// its `key = value`, on its line (an array may take more).
    pub inline: [Option<Range<usize>>; INLINE_KEYS.len()],
    /// The sub-tables that end the table last scanned, from the first
    /// header line (`[service.build_args]`, `[[service.services]]`) to
    /// the table's end: TOML writers put inline tables so. Left for the
    /// caller to read with toml-spanner.
    pub rest: Option<Range<usize>>,
}

/// The scan stopped: the text is not in the form this reader takes.
struct Decline;

type Scan<T> = Result<T, Decline>;

impl<'a> Scanner<'a> {
    pub(super) fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            strings: Vec::new(),
            slots: Default::default(),
            discovered: None,
            spare: Vec::new(),
            inline: Default::default(),
            rest: None,
        }
    }

    /// Reads `text[table]`, which starts with a `[[service]]` header line
    /// and holds nothing else of the document. False: declined; the
    /// caller must read this table another way.
    pub(super) fn service(&mut self, table: Range<usize>) -> bool {
        self.strings.clear();
        self.slots = Default::default();
        self.inline = Default::default();
        self.rest = None;
        if let Some(mut entries) = self.discovered.take() {
            entries.clear();
            self.spare = entries;
        }
        self.table(table).is_ok()
    }

    fn table(&mut self, table: Range<usize>) -> Scan<()> {
        let bytes = &self.text.as_bytes()[..table.end];
        const HEADER: &[u8] = b"[[service]]";
        if !bytes[table.start..].starts_with(HEADER) {
            return Err(Decline);
        }
        let mut at = line_end(bytes, table.start + HEADER.len())?;
        while at < bytes.len() {
            at = match bytes[at] {
                b' ' | b'\t' => at + 1,
                b'\n' | b'\r' | b'#' => line_end(bytes, at)?,
                b'[' if is_sub_table_header(&bytes[at..]) => {
                    self.rest = Some(at..table.end);
                    return Ok(());
                }
                _ => {
                    let after = self.key_value(bytes, at)?;
                    line_end(bytes, after)?
                }
            };
        }
        Ok(())
    }

    /// `key = value` at `at`; returns where the value ends.
    fn key_value(&mut self, bytes: &[u8], at: usize) -> Scan<usize> {
        let (key_end, key) = key_at(bytes, at);
        let index = match known(key).ok_or(Decline)? {
            Known::Key(index) => index,
            Known::Discovered => return self.discovered(bytes, key_end),
            Known::Inline(index) => return self.inline(bytes, at, key_end, index),
        };
        if self.slots[index].is_some() {
            return Err(Decline);
        }
        let at = past_equals(bytes, key_end)?;
        let first = self.strings.len();
        let (list, end) = match bytes.get(at) {
            Some(b'[') => (true, self.array(bytes, at)?),
            Some(_) => (false, self.string(at)?),
            None => return Err(Decline),
        };
        self.slots[index] = Some(Slot {
            list,
            strings: first..self.strings.len(),
            span: at..end,
        });
        Ok(end)
    }

    /// `= value` after the key [`INLINE_KEYS`]`[index]` from `at` to
    /// `key_end`; returns where the value ends.
    fn inline(&mut self, bytes: &[u8], at: usize, key_end: usize, index: usize) -> Scan<usize> {
        if self.inline[index].is_some() {
            return Err(Decline);
        }
        let end = inline_end(bytes, past_equals(bytes, key_end)?)?;
        self.inline[index] = Some(at..end);
        Ok(end)
    }

    /// `= { source = [...], ... }` after `discovered` (which ends at
    /// `at`), on one line as `ripple sync` writes it; returns where it ends.
    fn discovered(&mut self, bytes: &[u8], at: usize) -> Scan<usize> {
        if self.discovered.is_some() {
            return Err(Decline);
        }
        let mut at = past_equals(bytes, at)?;
        if bytes.get(at) != Some(&b'{') {
            return Err(Decline);
        }
        at = skip_blanks(bytes, at + 1);
        let mut entries = std::mem::take(&mut self.spare);
        if bytes.get(at) == Some(&b'}') {
            self.discovered = Some(entries);
            return Ok(at + 1);
        }
        loop {
            let (key_end, _) = key_at(bytes, at);
            if key_end == at {
                return Err(Decline);
            }
            let key: Located<'a> = (&self.text[at..key_end], at..key_end);
            if entries.iter().any(|(k, _)| k.0 == key.0) {
                return Err(Decline);
            }
            at = past_equals(bytes, key_end)?;
            if bytes.get(at) != Some(&b'[') {
                return Err(Decline);
            }
            let first = self.strings.len();
            let end = self.one_line_array(bytes, at)?;
            entries.push((
                key,
                Slot {
                    list: true,
                    strings: first..self.strings.len(),
                    span: at..end,
                },
            ));
            at = skip_blanks(bytes, end);
            match bytes.get(at) {
                Some(b',') => at = skip_blanks(bytes, at + 1),
                Some(b'}') => {
                    self.discovered = Some(entries);
                    return Ok(at + 1);
                }
                _ => return Err(Decline),
            }
        }
    }

    /// An array of strings on one line (inside an inline table).
    fn one_line_array(&mut self, bytes: &[u8], at: usize) -> Scan<usize> {
        let mut at = skip_blanks(bytes, at + 1);
        loop {
            match bytes.get(at) {
                Some(b']') => return Ok(at + 1),
                Some(_) => at = skip_blanks(bytes, self.string(at)?),
                None => return Err(Decline),
            }
            match bytes.get(at) {
                Some(b',') => at = skip_blanks(bytes, at + 1),
                Some(b']') => return Ok(at + 1),
                _ => return Err(Decline),
            }
        }
    }

    /// An array of strings at `at` (its `[`), over as many lines as it
    /// likes; returns where it ends.
    fn array(&mut self, bytes: &[u8], at: usize) -> Scan<usize> {
        let mut at = skip_space(bytes, at + 1)?;
        loop {
            match bytes.get(at) {
                Some(b']') => return Ok(at + 1),
                Some(_) => at = skip_space(bytes, self.string(at)?)?,
                None => return Err(Decline),
            }
            match bytes.get(at) {
                Some(b',') => at = skip_space(bytes, at + 1)?,
                Some(b']') => return Ok(at + 1),
                _ => return Err(Decline),
            }
        }
    }

    /// A one-line string at `at`, basic or literal; returns where it ends.
    /// A string with a backslash or a control character declines (see
    /// [`closing`]), so neither has escapes. Searched in the whole text,
    /// not the table's bytes: it ends on its line, which ends in the
    /// table, and a table's last string is then searched in blocks too.
    #[inline(always)]
    fn string(&mut self, at: usize) -> Scan<usize> {
        let end = string_end(self.text.as_bytes(), at)?;
        self.strings.push((&self.text[at + 1..end - 1], at..end));
        Ok(end)
    }
}

/// Whether `line` starts with the header of a sub-table of a service
/// (`[service.build_args]`, `[[service.services]]`), as TOML writers put
/// them: what ends a service's own keys without ending the service.
pub(super) fn is_sub_table_header(line: &[u8]) -> bool {
    line.starts_with(b"[service.") || line.starts_with(b"[[service.")
}

/// Where the one-line string at `at` (its opening quote, basic or
/// literal) ends, past its closing quote. A string that does not close on
/// its line, a multi-line one among them, declines.
#[inline(always)]
fn string_end(bytes: &[u8], at: usize) -> Scan<usize> {
    let quote = bytes[at];
    if quote != b'"' && quote != b'\'' {
        return Err(Decline);
    }
    let start = at + 1;
    let end = start + closing(quote, &bytes[start..]).ok_or(Decline)?;
    if bytes[end] != quote {
        return Err(Decline);
    }
    // `""` then a quote opens a multi-line string.
    if end == start && bytes.get(end + 1) == Some(&quote) {
        return Err(Decline);
    }
    Ok(end + 1)
}

/// Where in `bytes` the first `quote`, line end or byte a plain string
/// may not hold is: a backslash (an escape, or in a literal string a
/// backslash the reader would have to tell apart), a control character
/// but tab, or DEL. Only the quote closes the string; any other stop
/// declines it. So the bytes a string is read from are checked as they
/// are searched, not in a pass over the whole table before. Most strings
/// of a manifest are short: on x86-64 their first 64 bytes are compared
/// 16 at a time (SSE2, which every x86-64 processor has), and memchr,
/// about 70 instructions a call before it finds anything, takes only
/// longer ones (see BENCHMARKS.md, sixteenth session).
#[inline(always)]
fn closing(quote: u8, bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let start = {
        let mut start = 0;
        while start < 64
            && let Some(block) = bytes[start..].first_chunk::<16>()
        {
            let found = sse2_stops(quote, block);
            if found != 0 {
                return Some(start + found.trailing_zeros() as usize);
            }
            start += 16;
        }
        let rest = &bytes[start..];
        // The last few bytes of a table: fewer than a block.
        if rest.len() < 16 {
            return rest
                .iter()
                .position(|&b| stops(quote, b))
                .map(|n| start + n);
        }
        start
    };
    #[cfg(not(target_arch = "x86_64"))]
    let start = 0;
    let rest = &bytes[start..];
    let end = memchr::memchr3(quote, b'\n', b'\r', rest).unwrap_or(rest.len());
    // Before the quote or line end, only a byte the string may not hold
    // stops.
    match rest[..end].iter().position(|&b| stops(quote, b)) {
        Some(n) => Some(start + n),
        None => (end < rest.len()).then_some(start + end),
    }
}

/// Whether `byte` ends a string that opened with `quote`: the quote, or
/// a byte [`closing`] stops at.
#[inline(always)]
fn stops(quote: u8, byte: u8) -> bool {
    byte == quote || (byte < 0x20 && byte != b'\t') || byte == 0x7f || byte == b'\\'
}

/// A bit for each byte of `block` that [`stops`] a string.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_stops(quote: u8, block: &[u8; 16]) -> u32 {
    let block = crate::bytes::Block::load(block);
    let control = block.within(0, 0x1f).except(block.eq(b'\t'));
    (control | block.eq(quote) | block.eq(0x7f) | block.eq(b'\\')).bits()
}

/// Where the inline table or array at `at` ends: brackets and braces
/// balanced outside strings and comments. An array may run over lines
/// (TOML writers put each sidecar on a line of its own); whether what it
/// holds is TOML is for toml-spanner to say. A string that does not
/// close on its line declines (see [`string_end`]), as does a value that
/// is no table or array.
fn inline_end(bytes: &[u8], at: usize) -> Scan<usize> {
    if !matches!(bytes.get(at), Some(b'{' | b'[')) {
        return Err(Decline);
    }
    let mut depth = 0usize;
    let mut at = at;
    loop {
        match bytes.get(at) {
            Some(b'{' | b'[') => depth += 1,
            Some(b'}' | b']') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(at + 1);
                }
            }
            Some(b'"' | b'\'') => {
                at = string_end(bytes, at)?;
                continue;
            }
            Some(b'#') => {
                at = comment_end(bytes, at)?;
                continue;
            }
            None => return Err(Decline),
            Some(_) => {}
        }
        at += 1;
    }
}

/// Which bytes a bare key is made of: ASCII letters and digits, `_`, `-`.
const KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
        b += 1;
    }
    table
};

/// Where the bare key at `at` ends, and the key as a [`word`] (`u128::MAX`
/// for a key of 16 bytes or more, which no known key is). On x86-64 a
/// key's first 16 bytes are compared at once (keys are short); else, and
/// past them, a table, not three comparisons a byte. Finding a key's end
/// was the scanner's hottest loop, and comparing the key with each known
/// one as text the next.
#[inline(always)]
fn key_at(bytes: &[u8], at: usize) -> (usize, u128) {
    #[cfg(target_arch = "x86_64")]
    if let Some(block) = bytes[at..].first_chunk::<16>() {
        let ends = !sse2_key_bytes(block) & 0xffff;
        if ends != 0 {
            let len = ends.trailing_zeros();
            let key = u128::from_le_bytes(*block) & KEY_MASKS[len as usize];
            return (at + len as usize, key);
        }
    }
    let mut end = at;
    while end < bytes.len() && KEY_BYTES[usize::from(bytes[end])] {
        end += 1;
    }
    let key = &bytes[at..end];
    let mut padded = [0u8; 16];
    match padded.get_mut(..key.len()) {
        Some(room) if key.len() < 16 => {
            room.copy_from_slice(key);
            (end, u128::from_le_bytes(padded))
        }
        _ => (end, u128::MAX),
    }
}

/// A key of fewer than 16 bytes as one number: its bytes, the first
/// lowest, zeros above. Two keys are the same exactly when their words
/// are, and comparing words calls no `memcmp`.
const fn word(key: &str) -> u128 {
    let bytes = key.as_bytes();
    assert!(bytes.len() < 16, "a known key is shorter than 16 bytes");
    let mut word = 0u128;
    let mut k = 0;
    while k < bytes.len() {
        word |= (bytes[k] as u128) << (8 * k);
        k += 1;
    }
    word
}

/// The first `len` bytes of a block, as a mask of its word: a shift of a
/// 128-bit number by a variable count took several instructions a key.
#[cfg(target_arch = "x86_64")]
const KEY_MASKS: [u128; 16] = {
    let mut masks = [0u128; 16];
    let mut len = 1;
    while len < 16 {
        masks[len] = (1u128 << (8 * len)) - 1;
        len += 1;
    }
    masks
};

/// What a key the scanner knows is to it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    /// [`KEYS`]`[k]`: a string or an array of strings.
    Key(usize),
    /// [`DISCOVERED`].
    Discovered,
    /// [`INLINE_KEYS`]`[k]`.
    Inline(usize),
}

/// How many places [`KNOWN`] has: a power of two, enough for its keys to
/// fall in places of their own.
const PLACE_BITS: u32 = 6;

/// Every key the scanner knows, each in the place [`place`] gives its
/// [`word`]: a key is told by one load and one comparison, where
/// comparing it with each known key in turn cost about 20 instructions a
/// line of a manifest.
const KNOWN: [Option<(u128, Known)>; 1 << PLACE_BITS] = {
    let mut known = [None; 1 << PLACE_BITS];
    let mut k = 0;
    while k < KEYS.len() {
        known[place(word(KEYS[k]), MULTIPLIER)] = Some((word(KEYS[k]), Known::Key(k)));
        k += 1;
    }
    known[place(word(DISCOVERED), MULTIPLIER)] = Some((word(DISCOVERED), Known::Discovered));
    let mut k = 0;
    while k < INLINE_KEYS.len() {
        known[place(word(INLINE_KEYS[k]), MULTIPLIER)] =
            Some((word(INLINE_KEYS[k]), Known::Inline(k)));
        k += 1;
    }
    known
};

/// The multiplier that puts every known key in a place of its own: the
/// first such of a sequence of odd numbers, found when compiling.
const MULTIPLIER: u64 = {
    let mut words = [0u128; KEYS.len() + 1 + INLINE_KEYS.len()];
    let mut k = 0;
    while k < KEYS.len() {
        words[k] = word(KEYS[k]);
        k += 1;
    }
    words[KEYS.len()] = word(DISCOVERED);
    let mut k = 0;
    while k < INLINE_KEYS.len() {
        words[KEYS.len() + 1 + k] = word(INLINE_KEYS[k]);
        k += 1;
    }
    let mut multiplier = 0x9E37_79B9_7F4A_7C15u64;
    let mut tries = 0;
    loop {
        assert!(tries < 10_000, "no multiplier puts the known keys apart");
        let mut taken = 0u64;
        let mut apart = true;
        let mut k = 0;
        while k < words.len() {
            let bit = 1u64 << place(words[k], multiplier);
            apart &= taken & bit == 0;
            taken |= bit;
            k += 1;
        }
        if apart {
            break multiplier;
        }
        multiplier = multiplier.wrapping_add(0x2545_F491_4F6C_DD1E);
        tries += 1;
    }
};

/// Where in [`KNOWN`] the key whose word is `word` would be.
#[inline(always)]
const fn place(word: u128, multiplier: u64) -> usize {
    let folded = word as u64 ^ (word >> 64) as u64;
    (folded.wrapping_mul(multiplier) >> (64 - PLACE_BITS)) as usize
}

/// What the key whose word is `word` is, when the scanner knows it.
#[inline(always)]
fn known(word: u128) -> Option<Known> {
    match KNOWN[place(word, MULTIPLIER)] {
        Some((known_word, known)) if known_word == word => Some(known),
        _ => None,
    }
}

/// A bit for each byte of `block` that a bare key may hold (see
/// [`KEY_BYTES`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_key_bytes(block: &[u8; 16]) -> u32 {
    let block = crate::bytes::Block::load(block);
    let letter = block.lowercase().within(b'a', 25);
    (letter | block.within(b'0', 9) | block.eq(b'_') | block.eq(b'-')).bits()
}

/// Past the `=` after a key at `at`, and the blanks around it; anything
/// else there declines. ` = ` and the value, as nearly every manifest
/// writes them, are taken at once.
#[inline(always)]
fn past_equals(bytes: &[u8], at: usize) -> Scan<usize> {
    if bytes.get(at..at + 3) == Some(b" = ") {
        return Ok(match bytes.get(at + 3) {
            Some(b' ' | b'\t') => skip_blanks(bytes, at + 4),
            _ => at + 3,
        });
    }
    let at = skip_blanks(bytes, at);
    match bytes.get(at) {
        Some(b'=') => Ok(skip_blanks(bytes, at + 1)),
        _ => Err(Decline),
    }
}

/// Past spaces and tabs.
fn skip_blanks(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

/// Past blanks, newlines and comments, as between the values of an array.
/// Most arrays are written on one line: what follows `[`, a value or `,`
/// is the next item at once or after one space, taken here inline.
#[inline(always)]
fn skip_space(bytes: &[u8], at: usize) -> Scan<usize> {
    let space = |at: usize| matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r' | b'#'));
    match bytes.get(at) {
        Some(b' ') if !space(at + 1) => Ok(at + 1),
        _ if !space(at) => Ok(at),
        _ => skip_spaces(bytes, at),
    }
}

/// [`skip_space`] over any run of them.
fn skip_spaces(bytes: &[u8], mut at: usize) -> Scan<usize> {
    loop {
        at = skip_blanks(bytes, at);
        match bytes.get(at) {
            Some(b'\n' | b'\r' | b'#') => at = line_end(bytes, at)?,
            _ => return Ok(at),
        }
    }
}

/// Past blanks, an optional comment and the end of the line (or text);
/// anything else there declines.
#[inline]
fn line_end(bytes: &[u8], at: usize) -> Scan<usize> {
    // Most lines end just after their value.
    if bytes.get(at) == Some(&b'\n') {
        return Ok(at + 1);
    }
    let mut at = skip_blanks(bytes, at);
    if bytes.get(at) == Some(&b'#') {
        at = comment_end(bytes, at)?;
    }
    match (bytes.get(at), bytes.get(at + 1)) {
        (None, _) => Ok(at),
        (Some(b'\n'), _) => Ok(at + 1),
        (Some(b'\r'), Some(b'\n')) => Ok(at + 2),
        _ => Err(Decline),
    }
}

/// Where the comment at `at` ends, before its line's end; a character
/// TOML forbids in a comment declines. Apart from [`line_end`], which
/// every line passes and few with a comment, so that it stays inlined.
#[cold]
fn comment_end(bytes: &[u8], at: usize) -> Scan<usize> {
    let end = memchr::memchr2(b'\n', b'\r', &bytes[at..]).map_or(bytes.len(), |n| at + n);
    match is_comment_text(&bytes[at..end]) {
        true => Ok(end),
        false => Err(Decline),
    }
}

/// Whether a comment's `bytes` hold no control character but tab, which
/// TOML forbids there. One pass without branches, which the compiler
/// vectorises.
fn is_comment_text(bytes: &[u8]) -> bool {
    // `&` and `|`, not `&&` and `||`: no branches, so it vectorises.
    let bad = |b: u8| ((b < 0x20) & (b != b'\t')) | (b == 0x7f);
    bytes.iter().fold(0u8, |found, &b| found | u8::from(bad(b))) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What toml-spanner reads from a one-service document, in the
    /// scanner's terms: each key's strings and the value's span.
    type Read = Vec<(usize, Vec<(String, Range<usize>)>, Range<usize>)>;

    fn toml_reads(text: &str) -> Read {
        let span = |s: toml_spanner::Span| s.start as usize..s.end as usize;
        let arena = toml_spanner::Arena::new();
        let document = toml_spanner::parse(text, &arena).expect("valid TOML");
        let services = document.table().get("service").unwrap().as_array().unwrap();
        let table = services.iter().next().unwrap().as_table().unwrap();
        let mut read = Vec::new();
        for (index, key) in KEYS.iter().enumerate() {
            let Some(item) = table.get(key) else { continue };
            let strings = match item.as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| (i.as_str().unwrap().to_string(), span(i.span())))
                    .collect(),
                None => vec![(item.as_str().unwrap().to_string(), span(item.span()))],
            };
            read.push((index, strings, span(item.span())));
        }
        read
    }

    fn scanner_reads(text: &str) -> Option<Read> {
        let mut scanner = Scanner::new(text);
        if !scanner.service(0..text.len()) {
            return None;
        }
        let read = scanner
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let slot = slot.as_ref()?;
                let strings = scanner.strings[slot.strings.clone()]
                    .iter()
                    .map(|(s, span)| (s.to_string(), span.clone()))
                    .collect();
                Some((index, strings, slot.span.clone()))
            });
        Some(read.collect())
    }

    #[test]
    fn every_known_key_is_told_and_no_other() {
        for (k, key) in KEYS.iter().enumerate() {
            assert_eq!(known(word(key)), Some(Known::Key(k)), "{key}");
        }
        assert_eq!(known(word(DISCOVERED)), Some(Known::Discovered));
        for (k, key) in INLINE_KEYS.iter().enumerate() {
            assert_eq!(known(word(key)), Some(Known::Inline(k)), "{key}");
        }
        for other in [
            "",
            "nam",
            "names",
            "Name",
            "build_arg",
            "build_args_fil",
            "tag",
            "x",
        ] {
            assert_eq!(known(word(other)), None, "{other}");
        }
        // A key of 16 bytes or more, and every word of one byte.
        assert_eq!(known(u128::MAX), None);
        for byte in 0..=255u8 {
            assert_eq!(known(u128::from(byte)), None, "{byte}");
        }
    }

    #[test]
    fn reads_the_common_form_as_toml_does() {
        let tables = [
            "[[service]]\nname = \"api\"\nkind = \"image\"\n",
            "[[service]]\nname = \"api\"\nkind = \"image\"",
            "[[service]] # api\n\n  name\t=\t'a\"pi'   # the name\r\n# a comment\n\n\
             paths = [\"src/api\", '!**/*.md',]\n",
            "[[service]]\ndepends_on = [\n  # first\n  \"a\" ,\n\n  \"b\" # second\n  ]\n\
             lint = []\nunit = [ ]\nfunctional=[\"é ü\t\"]\nname = \"\"\n",
            "[[service]]\nname = \"x\"\nimage = \"r/x\"\ndockerfile = \"x/Dockerfile\"\n\
             context = \"x\"\ntoolchain = \"golang:1.21\"\n",
            // More blanks after ` = ` than one.
            "[[service]]\nname =   \"api\"\nkind = \t 'image'\n",
            // One space, then another blank, a line's end or a comment.
            "[[service]]\npaths = [ \"a\",  \"b\", \t\"c\", \n\"d\", # e\n\"f\" , \r\n\"g\" ]\n",
            // A backslash in a comment is only text.
            "[[service]] # C:\\ci\nname = \"api\" # \\n\n",
            // Long strings, past the blocks compared at once.
            "[[service]]\nimage = \"registry.example.org/a/very/long/path/to/the/image/of/this/service\"\n\
             dockerfile = 'services/a/very/long/path/to/the/service/that/builds/it/Dockerfile'\n",
        ];
        for text in tables {
            assert_eq!(scanner_reads(text), Some(toml_reads(text)), "{text}");
        }
    }

    #[test]
    fn declines_everything_else() {
        let declined = [
            "name = \"api\"\n",                            // no header
            "[[service]]\nname = \"a\\\"pi\"\n",           // escape
            "[[service]]\nname = 'a\\pi'\n",               // any backslash
            "[[service]]\nname = \"\"\"api\"\"\"\n",       // multi-line
            "[[service]]\nname = '''api'''\n",             // multi-line literal
            "[[service]]\nname = \"api\"\nname = \"b\"\n", // key set twice
            "[[service]]\n\"name\" = \"api\"\n",           // quoted key
            "[[service]]\nname.first = \"api\"\n",         // dotted key
            "[[service]]\nnom = \"api\"\n",                // unknown key
            "[[service]]\nname = 1\n",
            "[[service]]\nname = true\n",
            "[[service]]\nname = \"api\" \"b\"\n",
            "[[service]]\nname = \"api\nkind = \"image\"\n",
            "[[service]]\nname = \"a\x01pi\"\n",
            "[[service]]\nname = \"a\x7fpi\"\n",
            "[[service]]\nname = \"api\" # a\x01\n",
            "[[service]]\nname = \"api\" # a\x7f\n",
            "[[service]]\n\x01name = \"api\"\n",
            "[[service]]\nname = \"api\"\x01\n",
            "[[service]]\nname =\x0b\"api\"\n",
            "[[service]]\nname = \"api\"\nimage = \"a/long/name/past/the/first/blocks/of/sixteen/bytes/each/\x01/x\"\n",
            "[[service]]\nname = \"api\"\nimage = \"a/long/name/past/the/first/blocks/of/sixteen/bytes/each/\\x\"\n",
            "[[service]]\nname = \"api\"\rkind = \"image\"\n",
            "[[service]]\nname =\n",
            "[[service]]\nname = \"api",
            "[[service]]\npaths = [\"a\" \"b\"]\n",
            "[[service]]\npaths = [,]\n",
            "[[service]]\npaths = [[\"a\"]]\n",
            "[[service]]\npaths = [\"a\"\n",
            "[[service]]\n[settings]\n",
            "[[service]]\n[ service.sub ]\n",
            "[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\n",
            "[[service]] x\nname = \"a\"\n",
        ];
        for text in declined {
            assert_eq!(scanner_reads(text), None, "{text:?}");
        }
    }

    #[test]
    fn reads_discovered_keys_as_sync_writes_them() {
        let read = |text: &str| {
            let mut scanner = Scanner::new(text);
            scanner.service(0..text.len()).then(|| {
                let entries = scanner.discovered.clone().unwrap_or_default();
                entries
                    .iter()
                    .map(|((source, _), slot)| {
                        let names: Vec<&str> = scanner.strings[slot.strings.clone()]
                            .iter()
                            .map(|s| s.0)
                            .collect();
                        format!("{source}={}", names.join("+"))
                    })
                    .collect::<Vec<_>>()
            })
        };
        let table = |key: &str| format!("[[service]]\nname = \"a\"\n{key}\nkind = \"library\"\n");
        assert_eq!(
            read(&table(
                "discovered = { docker = [\"b\"], go = [\"c\", \"d\"] }"
            )),
            Some(vec!["docker=b".to_string(), "go=c+d".to_string()])
        );
        assert_eq!(
            read(&table("discovered={go=['c',]} # ok")),
            Some(vec!["go=c".to_string()])
        );
        assert_eq!(read(&table("discovered = {}")), Some(vec![]));
        for declined in [
            "discovered = { go = [\"c\"], go = [\"d\"] }",
            "discovered = { go = [\"c\"] }\ndiscovered = {}",
            "discovered = { go = [\n\"c\"] }",
            "discovered = { \"go\" = [\"c\"] }",
            "discovered = { go = \"c\" }",
            "discovered = { go = [\"c\"]",
            "discovered = { go.x = [\"c\"] }",
        ] {
            assert_eq!(read(&table(declined)), None, "{declined}");
        }
    }

    /// `build_args`, `tags` and sidecars on one line are found whole, to
    /// be read alone; anything else there declines.
    #[test]
    fn finds_inline_values_on_their_line() {
        fn read(text: &str) -> Option<Vec<Option<&str>>> {
            let mut scanner = Scanner::new(text);
            scanner.service(0..text.len()).then(|| {
                let spans = scanner.inline.iter().cloned();
                spans.map(|span| span.map(|span| &text[span])).collect()
            })
        }
        let table = |keys: &str| format!("[[service]]\nname = \"a\"\n{keys}\nkind = \"image\"\n");
        let sidecars = "services = [{ name = \"redis\", image = 'redis:7', \
                        environment = { A = \"}]#\" } }, { name = \"pg\", image = \"p\" }]";
        let args = "build_args={GO=\"1.21\"}";
        let tags = "tags = { push = [\"{branch}\", \"{sha}\"], release = [] }";
        assert_eq!(
            read(&table(&format!("{sidecars} # sidecars\n{args}\n{tags}"))),
            Some(vec![Some(args), Some(tags), Some(sidecars)])
        );
        assert_eq!(read(&table("")), Some(vec![None, None, None]));
        // An array over lines, as TOML writers put sidecars: whether what
        // it holds is TOML is toml-spanner's to say.
        let lines = "services = [\n  { name = \"redis\", image = \"redis:7\" }, # one\n  { name = \"pg\", image = \"p\" },\n]";
        assert_eq!(read(&table(lines)), Some(vec![None, None, Some(lines)]));
        // An inline table over lines too, which toml-spanner reads as it
        // reads the whole document (where it says no, the table is read
        // whole and the problem reported there).
        let split = "build_args = { # no\n}";
        assert_eq!(read(&table(split)), Some(vec![Some(split), None, None]));
        for declined in [
            "services = [\n{ name = \"redis\", image = \"redis:7\" }",
            "services = [\n{ name = \"redis\", image = \"redis:7\" } # \x01\n]",
            "build_args = { GO = \"1.21\"",
            "build_args = { GO = \"1.21\" }\nbuild_args = {}",
            "tags = \"latest\"",
            "build_args = { GO = \"\"\"1.21\"\"\" }",
            "build_args = { GO = \"1.21 }",
            "build_args = { GO = \"1.21\" } tags = {}",
            "build_args.GO = \"1.21\"",
        ] {
            assert_eq!(read(&table(declined)), None, "{declined}");
        }
    }

    /// The sub-tables that end a table, as TOML writers put inline
    /// tables, are left whole to the caller, from the first header on.
    #[test]
    fn leaves_the_sub_tables_that_end_a_table() {
        let text = "[[service]]\nname = \"a\"\nkind = \"image\"\n\n[service.build_args]\nGO = \"1\"\n\n\
                    [[service.services]]\nname = \"pg\"\nimage = \"p\"\n";
        let mut scanner = Scanner::new(text);
        assert!(scanner.service(0..text.len()));
        let rest = &text[scanner.rest.clone().unwrap()];
        assert!(rest.starts_with("[service.build_args]\n") && text.ends_with(rest));
        assert_eq!(scanner.strings.len(), 2);
        // The next table scanned starts with none.
        let plain = "[[service]]\nname = \"b\"\n";
        let mut scanner = Scanner::new(plain);
        assert!(scanner.service(0..plain.len()) && scanner.rest.is_none());
    }

    /// A key ends at the first byte the table refuses, whatever its value
    /// and wherever it is: in the block compared at once, past it, or in
    /// text too short for a block.
    #[test]
    fn a_key_ends_where_the_table_says() {
        let plain = |bytes: &[u8], at: usize| {
            (at..bytes.len())
                .find(|&k| !KEY_BYTES[usize::from(bytes[k])])
                .unwrap_or(bytes.len())
        };
        let key = b"aZ_-09zA";
        for byte in 0..=255u8 {
            for len in [0, 5, 15, 16, 17, 24, 40] {
                for place in 0..len {
                    for at in [0, 1, 3] {
                        let mut bytes: Vec<u8> = (0..len).map(|k| key[k % key.len()]).collect();
                        bytes[place] = byte;
                        if at <= len {
                            let (end, key) = key_at(&bytes, at);
                            assert_eq!(end, plain(&bytes, at), "{byte} {len} {place}");
                            // Key bytes are ASCII.
                            let text = std::str::from_utf8(&bytes[at..end]).unwrap();
                            let expected = if text.len() < 16 {
                                word(text)
                            } else {
                                u128::MAX
                            };
                            assert_eq!(key, expected, "{byte} {len} {place}");
                        }
                    }
                }
            }
        }
    }

    /// The blocks and the tail find the first quote, line end or byte a
    /// plain string may not hold wherever it is, as a plain search does:
    /// in any block, past the last (where memchr looks), in the few bytes
    /// at the end, or nowhere.
    #[test]
    fn a_closing_quote_is_found_in_every_block_and_the_tail() {
        let plain = |quote: u8, bytes: &[u8]| {
            let stop = |b: u8| b == quote || (b < 0x20 && b != b'\t') || b == 0x7f || b == b'\\';
            bytes.iter().position(|&b| stop(b))
        };
        let ends = [
            (b'"', b'"'),
            (b'\'', b'\''),
            (b'"', b'\n'),
            (b'\'', b'\r'),
            (b'"', b'\\'),
            (b'\'', 0x01),
            (b'"', 0x1f),
            (b'\'', 0x7f),
        ];
        for len in 0..150 {
            for at in 0..=len {
                for (quote, end) in ends {
                    // What does not stop, all along: the other quote, a
                    // tab, a space, UTF-8's high bytes.
                    let other = if quote == b'"' { b'\'' } else { b'"' };
                    let fill = [other, b'\t', b' ', 0xc3, 0xa9, 0x80, 0xff, b'a'];
                    let mut bytes: Vec<u8> = (0..len).map(|k| fill[k % fill.len()]).collect();
                    if at < len {
                        bytes[at] = end;
                    }
                    assert_eq!(closing(quote, &bytes), plain(quote, &bytes), "{len} {at}");
                }
            }
        }
    }
}
