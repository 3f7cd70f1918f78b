//! Reports → text: the JSON contract, the affected list, and the
//! dependency graph as DOT or Mermaid. Pure: returns strings. CI
//! configuration is the backends' (`crate::backend`).

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use crate::changes::ChangeSet;
use crate::graph::{Affected, AffectedService, AffectedSet};
use crate::manifest::{Manifest, Origin};
use crate::plan::Plan;

/// The JSON report of `affected --format json`: DESIGN.md's contract.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    changes: &'a ChangeSet,
    services: &'a [AffectedService],
    build_order: &'a [Vec<compact_str::CompactString>],
}

impl<'a> Report<'a> {
    /// Pairs a change set with its affected set.
    pub fn new(changes: &'a ChangeSet, affected: &'a Affected) -> Report<'a> {
        Report {
            changes,
            services: &affected.services,
            build_order: &affected.build_order,
        }
    }
}

/// `affected --format json`, written into `out` as it goes: serde_json's
/// pretty layout, but each entry of `services` on one line, as DESIGN.md's
/// example writes them. A change that reaches 18,600 services is 4.0 MB
/// of text that way instead of 6.7 (read from a pipe, the larger one took
/// 1.9 ms longer), and a diff of two reports shows the services that
/// changed line by line. The services are written directly (serde costs
/// about 18 instructions a byte here) and on two threads.
pub fn affected_json(
    changes: &ChangeSet,
    affected: &AffectedSet<'_>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, out);
    // The change set's fields as serde writes them, but the closing brace
    // (a struct of fields: serde writes it so).
    let head = serde_json::to_vec_pretty(changes)?;
    let fields = head
        .strip_suffix(b"\n}")
        .ok_or_else(|| std::io::Error::other("a change set is written as a JSON object"))?;
    buffered.write_all(fields)?;
    buffered.write_all(b",\n  \"services\": ")?;
    let positions = affected.positions();
    if positions.is_empty() {
        buffered.write_all(b"[]")?;
    } else {
        buffered.write_all(b"[\n")?;
        let mut first = true;
        let services_json = |run: &[usize]| services_json(affected, run);
        crate::parallel::in_order(positions, services_json, |run| {
            if !std::mem::take(&mut first) {
                buffered.write_all(b",\n")?;
            }
            buffered.write_all(&run)
        })?;
        buffered.write_all(b"\n  ]")?;
    }
    buffered.write_all(b",\n  \"build_order\": ")?;
    json::list(&mut buffered, 1, affected.build_order(), |out, layer| {
        json::names(out, 2, layer)
    })?;
    buffered.write_all(b"\n}\n")?;
    buffered.flush()
}

/// Affected services (positions) as entries of the report's `services`,
/// one after another, separated by commas.
fn services_json(affected: &AffectedSet<'_>, run: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(run.len() * 256);
    for (k, &i) in run.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(b",\n");
        }
        service_json(&mut out, affected, i);
    }
    out
}

/// One entry of `services` (an item of the report's list), on its line:
/// `{"name": "api", "kind": "image", ...}`, as serde writes an
/// [`AffectedService`]. Written into memory piece by piece, each quote
/// beside the text around it: through `io::Write`, a call and a result
/// to check for each piece, it took half as long again (18,000 entries
/// of the report of a change to a core library).
fn service_json(out: &mut Vec<u8>, affected: &AffectedSet<'_>, i: usize) {
    use json::name_bytes as name;
    out.extend_from_slice(b"    {\"name\": \"");
    out.extend_from_slice(name(affected.name(i)));
    out.extend_from_slice(b"\", \"kind\": \"");
    out.extend_from_slice(affected.kind(i).as_str().as_bytes());
    out.extend_from_slice(b"\", \"files\": ");
    // Writing into memory cannot fail.
    let _ = json::line(out, &affected.files(i), |out, file| json::string(out, file));
    affected.with_edges(i, |edges| {
        out.extend_from_slice(b", \"via\": [");
        for (k, (to, _)) in edges.iter().enumerate() {
            out.extend_from_slice(if k == 0 { b"\"" } else { &b", \""[..] });
            out.extend_from_slice(name(to));
            out.push(b'"');
        }
        out.extend_from_slice(b"], \"edges\": [");
        for (k, (to, origin)) in edges.iter().enumerate() {
            out.extend_from_slice(if k == 0 {
                b"{\"to\": \""
            } else {
                &b", {\"to\": \""[..]
            });
            out.extend_from_slice(name(to));
            out.extend_from_slice(b"\", \"origin\": \"");
            out.extend_from_slice(name(origin));
            out.extend_from_slice(b"\"}");
        }
        out.push(b']');
    });
    if let Some(input) = affected.input(i) {
        out.extend_from_slice(b", \"input\": ");
        let _ = json::string(out, input);
    }
    out.push(b'}');
}

/// Pieces of JSON as serde_json's pretty printer writes them: two spaces
/// a level, `[]` for an empty list.
pub(crate) mod json {
    use std::io::{Result, Write};

    /// A service name, or a word ripple chose (an edge's origin): written
    /// between quotes without looking for what to escape, as the manifest
    /// took only names of `[a-z0-9._-]` (most strings of a large report
    /// are names, and looking took a fifth of writing it).
    #[inline]
    pub fn name(out: &mut impl Write, name: &str) -> Result<()> {
        out.write_all(b"\"")?;
        out.write_all(name_bytes(name))?;
        out.write_all(b"\"")
    }

    /// A name's text, to be written between quotes as it is (see
    /// [`name`]).
    #[inline]
    pub fn name_bytes(name: &str) -> &[u8] {
        debug_assert!(crate::manifest::is_valid_name(name), "not a name: {name:?}");
        name.as_bytes()
    }

    /// A list of [`name`]s at `depth`.
    pub fn names(out: &mut impl Write, depth: usize, items: &[impl AsRef<str>]) -> Result<()> {
        list(out, depth, items, |out, text| name(out, text.as_ref()))
    }

    /// A string, quoted and escaped as serde_json escapes it.
    pub fn string(out: &mut impl Write, text: &str) -> Result<()> {
        // `&` and `|`, not `&&` and `||`: no branches, so it vectorises.
        let plain = text.bytes().fold(true, |plain, b| {
            plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
        });
        if plain {
            out.write_all(b"\"")?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"\"")
        } else {
            escaped(out, text)
        }
    }

    /// What follows the backslash of a byte's escape: 0 for a byte written
    /// as it is, `u` for `\u00XX`.
    const ESCAPE: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = b'u';
            b += 1;
        }
        table[0x08] = b'b';
        table[0x0c] = b'f';
        table[b'\n' as usize] = b'n';
        table[b'\r' as usize] = b'r';
        table[b'\t' as usize] = b't';
        table[b'"' as usize] = b'"';
        table[b'\\' as usize] = b'\\';
        table
    };

    const HEX: &[u8; 16] = b"0123456789abcdef";

    /// How many bytes [`escaped`] takes at a time, into a buffer of eight
    /// times as many. A block never outgrows what is left of the buffer
    /// (six bytes a byte at most), so the bytes need no check of room.
    /// Small: the buffer is zeroed on every call, and most texts (a
    /// workflow's YAML) are a few hundred bytes.
    pub(super) const BLOCK: usize = 256;

    /// [`string`] for text with something to escape, a buffer at a time:
    /// YAML inside JSON (Woodpecker's answer) has a quote or a newline
    /// every few bytes, and serde_json writes the run before each escape
    /// on its own.
    fn escaped(out: &mut impl Write, text: &str) -> Result<()> {
        let mut buffer = [0u8; 8 * BLOCK];
        buffer[0] = b'"';
        let mut at = 1;
        for block in text.as_bytes().chunks(BLOCK) {
            if at + 6 * BLOCK + 1 > buffer.len() {
                out.write_all(&buffer[..at])?;
                at = 0;
            }
            let mut words = block.chunks_exact(8);
            for word in words.by_ref() {
                let bytes: [u8; 8] = word.try_into().unwrap_or_default();
                // Eight bytes with nothing to escape (most, in YAML) are
                // copied at once.
                if !needs_escape(u64::from_le_bytes(bytes)) {
                    buffer[at..at + 8].copy_from_slice(&bytes);
                    at += 8;
                    continue;
                }
                for b in bytes {
                    at = escape_byte(&mut buffer, at, b);
                }
            }
            for &b in words.remainder() {
                at = escape_byte(&mut buffer, at, b);
            }
        }
        buffer[at] = b'"';
        out.write_all(&buffer[..at + 1])
    }

    /// Whether any of eight bytes is a control character, a quote or a
    /// backslash. Bit tricks: in `x - n` bytewise, the lowest byte below
    /// `n` gains the high bit it lacked, and a borrow starts only at such
    /// a byte, so a high bit gained means one is there.
    fn needs_escape(word: u64) -> bool {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES * 0x80;
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
        let control = below(word, 0x20);
        let quote = below(word ^ (ONES * u64::from(b'"')), 1);
        let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
        (control | quote | backslash) != 0
    }

    /// Writes `b` at `buffer[at..]` as serde writes it; returns where the
    /// next byte goes.
    fn escape_byte(buffer: &mut [u8], at: usize, b: u8) -> usize {
        match ESCAPE[usize::from(b)] {
            0 => {
                buffer[at] = b;
                at + 1
            }
            b'u' => {
                let (high, low) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]);
                buffer[at..at + 6].copy_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
                at + 6
            }
            short => {
                buffer[at] = b'\\';
                buffer[at + 1] = short;
                at + 2
            }
        }
    }

    /// An object, pretty as serde_json writes it, each value written by
    /// `value`.
    pub fn object<W: Write, V>(
        out: &mut W,
        entries: &[(&str, V)],
        mut value: impl FnMut(&mut W, &V) -> Result<()>,
    ) -> Result<()> {
        if entries.is_empty() {
            return out.write_all(b"{}");
        }
        for (k, (key, item)) in entries.iter().enumerate() {
            out.write_all(if k == 0 { b"{\n  " } else { b",\n  " })?;
            string(out, key)?;
            out.write_all(b": ")?;
            value(out, item)?;
        }
        out.write_all(b"\n}")
    }

    /// `value` as compact JSON, on one line; with `quoted`, as a JSON
    /// string holding that text (JSON inside JSON, as step outputs are),
    /// made in the same pass: a test matrix of megabytes is neither held
    /// as text nor escaped after.
    pub fn compact<T: serde::Serialize + ?Sized>(
        out: &mut dyn Write,
        value: &T,
        quoted: bool,
    ) -> Result<()> {
        // serde writes a few bytes at a time: gathered here, not through
        // `out`'s dynamic calls.
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, out);
        if quoted {
            buffered.write_all(b"\"")?;
        }
        compact_in(&mut buffered, value, quoted)?;
        if quoted {
            buffered.write_all(b"\"")?;
        }
        buffered.flush()
    }

    /// [`compact`] without the quotes around a quoted value, and without
    /// a buffer: a piece of a larger value, written into memory.
    pub fn compact_in<T: serde::Serialize + ?Sized>(
        out: &mut impl Write,
        value: &T,
        quoted: bool,
    ) -> Result<()> {
        if quoted {
            value.serialize(&mut serde_json::Serializer::with_formatter(out, Quoted))?;
        } else {
            value.serialize(&mut serde_json::Serializer::new(out))?;
        }
        Ok(())
    }

    /// serde_json's compact form as the contents of a JSON string: what
    /// escaping the compact text gives. That text has no control
    /// character (serde escapes them), so only its quotes and backslashes,
    /// all in strings' quotes and escapes, take a backslash more.
    struct Quoted;

    impl serde_json::ser::Formatter for Quoted {
        fn begin_string<W: ?Sized + Write>(&mut self, out: &mut W) -> Result<()> {
            out.write_all(b"\\\"")
        }

        fn end_string<W: ?Sized + Write>(&mut self, out: &mut W) -> Result<()> {
            out.write_all(b"\\\"")
        }

        fn write_char_escape<W: ?Sized + Write>(
            &mut self,
            out: &mut W,
            escape: serde_json::ser::CharEscape,
        ) -> Result<()> {
            use serde_json::ser::CharEscape;
            // The escape serde writes, its backslash (and a quote's)
            // escaped again.
            let escaped: &[u8] = match escape {
                CharEscape::Quote => b"\\\\\\\"",
                CharEscape::ReverseSolidus => b"\\\\\\\\",
                CharEscape::Solidus => b"\\\\/",
                CharEscape::Backspace => b"\\\\b",
                CharEscape::FormFeed => b"\\\\f",
                CharEscape::LineFeed => b"\\\\n",
                CharEscape::CarriageReturn => b"\\\\r",
                CharEscape::Tab => b"\\\\t",
                CharEscape::AsciiControl(byte) => {
                    let (high, low) = (HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]);
                    return out.write_all(&[b'\\', b'\\', b'u', b'0', b'0', high, low]);
                }
            };
            out.write_all(escaped)
        }
    }

    /// A list at `depth` (that of the key or item holding it), each item
    /// written by `item` after its indentation.
    pub fn list<W: Write, T>(
        out: &mut W,
        depth: usize,
        items: &[T],
        mut item: impl FnMut(&mut W, &T) -> Result<()>,
    ) -> Result<()> {
        if items.is_empty() {
            return out.write_all(b"[]");
        }
        out.write_all(b"[")?;
        for (k, value) in items.iter().enumerate() {
            out.write_all(if k == 0 { b"\n" } else { b",\n" })?;
            indent(out, depth + 1)?;
            item(out, value)?;
        }
        out.write_all(b"\n")?;
        indent(out, depth)?;
        out.write_all(b"]")
    }

    /// A list on one line, `[a, b]`, each item written by `item`.
    #[inline]
    pub fn line<W: Write, T>(
        out: &mut W,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut W, T) -> Result<()>,
    ) -> Result<()> {
        out.write_all(b"[")?;
        for (k, value) in items.into_iter().enumerate() {
            if k > 0 {
                out.write_all(b", ")?;
            }
            item(out, value)?;
        }
        out.write_all(b"]")
    }

    fn indent(out: &mut impl Write, depth: usize) -> Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        let mut left = 2 * depth;
        while left > 0 {
            let now = left.min(SPACES.len());
            out.write_all(&SPACES[..now])?;
            left -= now;
        }
        Ok(())
    }
}

/// `plan --format json`: the affected report plus the jobs, as no CI
/// system in particular would run them; written into `out` as it goes.
pub fn plan_json(report: &Report<'_>, plan: &Plan, out: &mut dyn Write) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct PlanJson<'a> {
        affected: &'a Report<'a>,
        jobs: &'a [crate::plan::Job],
        idle_reason: &'a Option<String>,
    }
    json_to(
        &PlanJson {
            affected: report,
            jobs: &plan.jobs,
            idle_reason: &plan.idle_reason,
        },
        out,
    )
}

/// Pretty JSON and a newline.
fn json_to(value: &impl Serialize, out: &mut dyn Write) -> std::io::Result<()> {
    // serde_json writes a few bytes at a time: gathered here, they cross
    // the `dyn Write` once per buffer rather than once per piece.
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer_pretty(&mut buffered, value)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
}

/// `affected --format text`: one line per service, then the build order.
pub fn affected_text(changes: &ChangeSet, affected: &AffectedSet<'_>) -> String {
    let mut out = format!("{} ({})\n", changes.reason, changes.event);
    if affected.positions().is_empty() {
        out.push_str("no service is affected\n");
    }
    for &i in affected.positions() {
        let _ = write!(out, "{} ({})", affected.name(i), affected.kind(i).as_str());
        let count = affected.files(i).len();
        if count > 0 {
            let _ = write!(out, ": {count} file{}", if count == 1 { "" } else { "s" });
        }
        affected.with_edges(i, |edges| {
            for (k, (via, _)) in edges.iter().enumerate() {
                out.push_str(if k == 0 { " via " } else { ", " });
                out.push_str(via);
            }
        });
        out.push('\n');
    }
    if !affected.build_order().is_empty() {
        out.push_str("build order:\n");
        for (i, layer) in affected.build_order().iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, layer.join(", "));
        }
    }
    out
}

/// The dependency graph in Graphviz DOT; edges point from a service to what
/// it depends on, discovered ones dashed and labelled with their source.
pub fn dot(manifest: &Manifest) -> String {
    let mut out = String::from("digraph services {\n  rankdir=LR;\n  node [shape=box];\n");
    for service in &manifest.services {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            service.name,
            service.name,
            service.kind.as_str()
        );
    }
    for (i, service) in manifest.services.iter().enumerate() {
        for (d, origin) in manifest.edges(i) {
            let dep = &manifest.services[d].name;
            match origin {
                Origin::Declared => {
                    let _ = writeln!(out, "  \"{}\" -> \"{dep}\";", service.name);
                }
                // Discovered edges dashed, labelled with their source.
                Origin::Discovered(source) => {
                    let _ = writeln!(
                        out,
                        "  \"{}\" -> \"{dep}\" [style=dashed, label=\"{source}\"];",
                        service.name
                    );
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The dependency graph as a Mermaid flowchart, discovered edges dotted and
/// labelled with their source. Node ids are positional because Mermaid ids
/// cannot hold `-` or `.`.
pub fn mermaid(manifest: &Manifest) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, service) in manifest.services.iter().enumerate() {
        let _ = writeln!(
            out,
            "  s{i}[\"{} ({})\"]",
            service.name,
            service.kind.as_str()
        );
    }
    for i in 0..manifest.services.len() {
        for (d, origin) in manifest.edges(i) {
            let _ = match origin {
                Origin::Declared => writeln!(out, "  s{i} --> s{d}"),
                Origin::Discovered(source) => writeln!(out, "  s{i} -.->|{source}| s{d}"),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `count` services, each depending on up to three
    /// before it (declared or discovered), and changes to some of their
    /// files: names that need escaping, non-ASCII, empty and full lists.
    fn services_and_changes(count: usize) -> (String, ChangeSet) {
        let odd = [
            "plain",
            "quote\"d",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}ctl",
            "é✓",
        ];
        let name = |k: usize| format!("svc.{k}_{}-x", k % 7);
        let mut text = String::new();
        let mut files = Vec::new();
        for k in 0..count {
            let kind = ["image", "base-image", "library", "tests"][k % 4];
            let _ = write!(
                text,
                "[[service]]\nname = \"{}\"\nkind = \"{kind}\"\npaths = [\"dir/{k}/**\"]\n",
                name(k)
            );
            if k % 4 < 2 {
                let _ = writeln!(
                    text,
                    "image = \"r/{k}\"\ndockerfile = \"dir/{k}/Dockerfile\""
                );
            }
            if k % 4 == 3 {
                text.push_str("toolchain = \"t:1\"\nunit = [\"test\"]\n");
            }
            let named = |source: usize| {
                let names = (k.saturating_sub(3)..k).filter(move |j| j % 3 == source);
                names
                    .map(|j| format!("\"{}\"", name(j)))
                    .collect::<Vec<_>>()
            };
            let _ = writeln!(text, "depends_on = [{}]", named(0).join(", "));
            let _ = writeln!(
                text,
                "discovered = {{ go = [{}], docker = [{}] }}",
                named(1).join(", "),
                named(2).join(", ")
            );
            // The first service is left alone: its dependents are
            // affected by others or not at all.
            if k > 0 {
                files.extend(
                    (0..k % 3).map(|f| format!("dir/{k}/{}-{f}", odd[(k + f) % odd.len()])),
                );
            }
        }
        let mut changes = ChangeSet::diff(files);
        changes.reason = "because\tof \"this\"".into();
        (text, changes)
    }

    /// The report written directly is what serde writes of it, for no
    /// service, one, and enough for two threads.
    #[test]
    fn strings_and_objects_are_escaped_as_serde_escapes_them() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        // JSON in JSON, long enough to cross the buffer with escapes at
        // every offset; and escapes of every length at the buffer's end.
        let nested = serde_json::to_string(&vec![every_ascii.as_str(); 300]).unwrap();
        let mut texts = vec![every_ascii.clone(), nested, "é\"ü\u{1F600}\\".into()];
        let end = 8 * json::BLOCK;
        for fill in (end - 20..end).chain(6 * json::BLOCK - 8..6 * json::BLOCK + 8) {
            for tail in ["\"", "\u{1}", "\n", "é", "a"] {
                texts.push(format!("{}{tail}{tail}", "x".repeat(fill)));
            }
        }
        for text in &texts {
            let mut ours = Vec::new();
            json::string(&mut ours, text).unwrap();
            let theirs = serde_json::to_vec(text).unwrap();
            assert!(ours == theirs, "{text:?}");
        }
        let entries = [("affected", "[\"a\"]"), ("tests", texts[1].as_str())];
        let map: std::collections::BTreeMap<&str, &str> = entries.into_iter().collect();
        for entries in [&entries[..], &[]] {
            let mut ours = Vec::new();
            json::object(&mut ours, entries, |out, value| json::string(out, value)).unwrap();
            let map: std::collections::BTreeMap<_, _> = map
                .iter()
                .filter(|(k, _)| entries.iter().any(|e| e.0 == **k))
                .collect();
            assert!(ours == serde_json::to_vec_pretty(&map).unwrap());
        }
    }

    /// A value written quoted is its compact JSON escaped as a string,
    /// byte for byte: every ASCII character, escapes and non-ASCII text,
    /// in keys and values, past the buffer's end.
    #[test]
    fn json_written_quoted_is_its_text_escaped() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let mut value = std::collections::BTreeMap::new();
        value.insert(every_ascii.clone(), vec![every_ascii.clone(); 3]);
        value.insert("é\"ü\u{1F600}\\/".into(), vec!["x".repeat(70_000)]);
        value.insert(String::new(), Vec::new());
        let text = serde_json::to_string(&value).unwrap();
        let mut plain = Vec::new();
        json::compact(&mut plain, &value, false).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), text);
        let mut quoted = Vec::new();
        json::compact(&mut quoted, &value, true).unwrap();
        assert_eq!(
            String::from_utf8(quoted).unwrap(),
            serde_json::to_string(&text).unwrap()
        );
    }

    /// The report written directly holds what serde writes of it, in
    /// serde's pretty layout but for the services, each on a line of its
    /// own that holds what serde writes of that service; for no service,
    /// one, and enough for two threads.
    #[test]
    fn affected_json_is_what_serde_writes_a_service_a_line() {
        for count in [0, 2, 7, 1_000] {
            let (text, changes) = services_and_changes(count);
            let manifest = Manifest::parse(&text, "services.toml").unwrap();
            let graph = crate::graph::ServiceGraph::new(&manifest);
            let mut set = graph.affected_set(&changes, crate::graph::Why::Kept);
            set.set_inputs(|i| format!("in-{i:04x}"));
            let mut written = Vec::new();
            affected_json(&changes, &set, &mut written).unwrap();
            // What serde writes of the entries made.
            let affected = set.into_affected();
            let report = Report::new(&changes, &affected);
            if count >= 7 {
                let some = |has: fn(&AffectedService) -> bool| affected.services.iter().any(has);
                assert!(some(|s| s.files.len() > 1 && s.input.is_some()));
                assert!(some(|s| s.edges.iter().any(|e| e.origin == "go")));
                assert!(some(|s| s.edges.len() > 1 && s.files.is_empty()));
            }
            let text = String::from_utf8(written).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                value,
                serde_json::to_value(&report).unwrap(),
                "{count} services"
            );
            // Each service is one line of the list, what serde writes of it.
            let listed = affected.services.len();
            assert_eq!(listed == 0, count == 0, "{count} services");
            let (before, rest) = text.split_once("\n  \"services\": ").unwrap();
            let (list, after) = match listed {
                0 => rest
                    .split_once('\n')
                    .map(|(list, after)| (list.trim_end_matches(','), after))
                    .unwrap(),
                _ => rest.split_once("\n  ],\n").unwrap(),
            };
            let lines: Vec<&str> = match listed {
                0 => {
                    assert_eq!(list, "[]");
                    Vec::new()
                }
                _ => list.strip_prefix("[\n").unwrap().split(",\n").collect(),
            };
            assert_eq!(lines.len(), listed);
            for (line, service) in lines.iter().zip(&affected.services) {
                assert!(line.starts_with("    {") && line.ends_with('}'), "{line}");
                let one: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(one, serde_json::to_value(service).unwrap());
            }
            // Everything else as serde's pretty printer lays it out.
            let pretty = String::from_utf8(serde_json::to_vec_pretty(&report).unwrap()).unwrap();
            assert!(pretty.starts_with(&format!("{before}\n  \"services\": ")));
            let tail = pretty.split_once("\n  \"build_order\"").unwrap().1;
            let after = after.strip_prefix("  \"build_order\"").unwrap();
            assert_eq!(after, format!("{tail}\n"), "{count} services");
        }
    }
}
