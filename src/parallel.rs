//! Work split between two threads where a large manifest or plan makes it
//! worth a thread: the machines ripple runs on have two cores or more.
//!
//! The threads are rayon's. A command that runs once makes this thread
//! one of its pool's two ([`start`]), so a half handed over is taken by a
//! thread already running on the other core, or done here when that one
//! is busy. A thread spawned for each step instead started up to 3 ms late
//! in one case of five on a two-core virtual machine: placed beside its
//! parent, it waited for the core the parent kept (see BENCHMARKS.md).
//! A server's requests, each on a thread of its own outside the pool, do
//! their steps in turn (see [`join`]).

pub mod fill;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Makes this thread one of the two of the process's pool, the other
/// started now: for a command that runs once, before any parallel step.
/// A server does not: its requests run in turn what [`join`] is given.
pub fn start() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    // A pool of its own, kept until exit: `build_global` would wait here
    // for the other thread to start, and it can start late (see above).
    // Fails only when this thread is in a pool already, which then serves.
    if let Ok(pool) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .spawn_handler(placement::spawn)
        .start_handler(placement::started)
        .build()
    {
        std::mem::forget(pool);
    }
}

/// Where the pool's other thread starts. Left to the kernel, it was
/// placed beside this one in a quarter to half of the runs on a two-core
/// virtual machine, and first ran 1.5-3.5 ms later, when the other core
/// took it over (see BENCHMARKS.md, seventeenth session). So it is
/// started on a core this one is not on, then allowed every core the
/// process may use, for the kernel to move it as it likes from then on.
mod placement {
    use std::sync::Mutex;

    /// Held while a thread is spawned and placed: the thread waits for it
    /// before it frees its placement, which would otherwise be undone by
    /// a placement made after the thread started.
    static PLACING: Mutex<()> = Mutex::new(());

    pub fn spawn(thread: rayon::ThreadBuilder) -> std::io::Result<()> {
        let _placing = PLACING.lock().unwrap_or_else(|e| e.into_inner());
        let handle = std::thread::Builder::new().spawn(|| thread.run())?;
        #[cfg(target_os = "linux")]
        if let Some(core) = current_core().and_then(other_core) {
            use std::os::unix::thread::JoinHandleExt as _;
            // SAFETY: the thread is alive (it waits for `PLACING` before it
            // can end) and the set is a valid `cpu_set_t` of the size given.
            // A refusal (a sandbox's) leaves the kernel's placement.
            unsafe {
                libc::pthread_setaffinity_np(
                    handle.as_pthread_t(),
                    std::mem::size_of::<libc::cpu_set_t>(),
                    &only(core),
                )
            };
        }
        Ok(())
    }

    /// Run first on the started thread: waits for its placement, then
    /// allows it every core the process may use.
    pub fn started(_index: usize) {
        drop(PLACING.lock().unwrap_or_else(|e| e.into_inner()));
        #[cfg(target_os = "linux")]
        if let Some(allowed) = allowed() {
            // SAFETY: a valid `cpu_set_t` of the size given, for this thread.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &allowed) };
        }
    }

    /// The cores the process may run on: the main thread's set, which a
    /// placed thread's own no longer is.
    #[cfg(target_os = "linux")]
    pub(super) fn allowed() -> Option<libc::cpu_set_t> {
        static ALLOWED: std::sync::OnceLock<Option<libc::cpu_set_t>> = std::sync::OnceLock::new();
        *ALLOWED.get_or_init(|| {
            // SAFETY: the kernel fills a zeroed `cpu_set_t` of the size given.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                let size = std::mem::size_of::<libc::cpu_set_t>();
                (libc::sched_getaffinity(0, size, &mut set) == 0).then_some(set)
            }
        })
    }

    /// The core this thread is on now.
    #[cfg(target_os = "linux")]
    pub(super) fn current_core() -> Option<usize> {
        // SAFETY: takes nothing; -1 on failure, which is refused here.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }

    /// A core the process may run on other than `here`, if there is one.
    #[cfg(target_os = "linux")]
    pub(super) fn other_core(here: usize) -> Option<usize> {
        let allowed = allowed()?;
        // SAFETY: `CPU_ISSET` reads a valid set at an index below its size.
        (0..libc::CPU_SETSIZE as usize)
            .find(|&core| core != here && unsafe { libc::CPU_ISSET(core, &allowed) })
    }

    /// The set of `core` alone.
    #[cfg(target_os = "linux")]
    fn only(core: usize) -> libc::cpu_set_t {
        // SAFETY: `CPU_SET` writes a zeroed set at an index below its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            set
        }
    }
}

/// Whether a second thread can run beside this one: this one is in a
/// pool of two (see [`start`]), so [`join`] splits its work. Read from the
/// pool, not from `available_parallelism`, which reads the affinity and
/// the cgroup's files on every call (and the steps asked it again and
/// again); outside a pool the steps take their plain paths.
pub fn two_cores() -> bool {
    rayon::current_thread_index().is_some() && rayon::current_num_threads() >= 2
}

/// Runs `a` here and `b` beside it when a second thread is free (else
/// here after `a`), and returns both results; a panic in either reaches
/// the caller. A thread outside a pool (a server's
/// request) runs both in turn: handed to a pool, every request's halves
/// queued behind every other's, and under 200 concurrent requests the
/// slowest answers took a second instead of a quarter.
pub fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if rayon::current_thread_index().is_some() {
        let inside = crate::arena::inside();
        rayon::join(a, move || kept_as_here(inside, b))
    } else {
        (a(), b())
    }
}

/// Runs `f`, handed to another thread by one that is `inside` a region or
/// not: what the other thread makes is kept as this one's is.
fn kept_as_here<R>(inside: bool, f: impl FnOnce() -> R) -> R {
    match inside {
        true => crate::arena::region(f),
        false => f(),
    }
}

/// Runs `take` on two threads at once (or twice here, when the other is
/// busy throughout): for work that each call takes from a shared counter
/// until none is left.
pub fn both(take: impl Fn() + Sync) {
    join(&take, &take);
}

/// `bytes` as text when they are UTF-8, with the places where `needle`
/// (of two bytes or more) starts in them that `keep` keeps, ascending:
/// all in one pass, a block at a time while it is in the core's cache, a
/// half on each thread when there are many. The error is the one for the
/// whole.
pub fn utf8_finding<'b>(
    bytes: &'b [u8],
    needle: &[u8],
    keep: impl Fn(usize) -> bool + Sync,
) -> Result<(&'b str, Vec<usize>), std::str::Utf8Error> {
    const LARGE: usize = 1 << 20;
    let checked = if bytes.len() >= LARGE && two_cores() {
        let cut = char_start(bytes, bytes.len() / 2);
        let (first, second) = join(
            || check_finding(bytes, 0..cut, needle, &keep),
            || check_finding(bytes, cut..bytes.len(), needle, &keep),
        );
        first.and_then(|mut found| {
            found.extend(second?);
            Ok(found)
        })
    } else {
        check_finding(bytes, 0..bytes.len(), needle, &keep)
    };
    match checked {
        // SAFETY: every block was checked, and they are cut between
        // characters.
        Ok(found) => Ok((unsafe { std::str::from_utf8_unchecked(bytes) }, found)),
        // Checked whole for the error's position in the whole (which
        // blocks cut between characters cannot have without it).
        Err(_) => {
            std::str::from_utf8(bytes).map(|text| (text, finding(text.as_bytes(), needle, keep)))
        }
    }
}

/// The places where `needle` (of two bytes or more) starts in text
/// already checked, that `keep` keeps, ascending: the search
/// [`utf8_finding`] makes, on this thread.
pub fn finding(bytes: &[u8], needle: &[u8], keep: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut found = Vec::new();
    ascii_finding(bytes, 0..bytes.len(), needle, |at| {
        if keep(at) {
            found.push(at);
        }
    });
    found
}

/// The first place at or after `at` (within a character's length) where
/// no character continues: blocks cut there are UTF-8 exactly when the
/// whole is. `at` itself when there is none, in text that is not UTF-8.
fn char_start(bytes: &[u8], at: usize) -> usize {
    (at..bytes.len())
        .take(4)
        .find(|&at| bytes[at] & 0xC0 != 0x80)
        .unwrap_or(at)
}

/// Checks `bytes[range]` and finds `needle` starting in it where `keep`
/// keeps it.
fn check_finding(
    bytes: &[u8],
    range: std::ops::Range<usize>,
    needle: &[u8],
    keep: &impl Fn(usize) -> bool,
) -> Result<Vec<usize>, std::str::Utf8Error> {
    // Read twice, when a block is not ASCII, from the core's own cache
    // rather than from memory.
    const BLOCK: usize = 128 << 10;
    let mut found = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = char_start(&bytes[..range.end], (at + BLOCK).min(range.end));
        let ascii = ascii_finding(bytes, at..end, needle, |k| {
            if keep(k) {
                found.push(k);
            }
        });
        if !ascii {
            std::str::from_utf8(&bytes[at..end])?;
        }
        at = end;
    }
    Ok(found)
}

/// Hands `each` every place in `range` where `needle` (which may end
/// past it) starts, ascending, and says whether `bytes[range]` is all
/// ASCII, which is then UTF-8. On x86-64, one pass 32 bytes a step
/// (SSE2, which every x86-64 processor has) looks at each byte once for
/// both: a place is tried where the needle's first two bytes are, and
/// in a manifest `\n[` starts nearly only the lines searched for.
/// Checking UTF-8, then searching with memchr (which picks the needle's
/// rarest bytes, `[` and `]`, found on most lines), each read the text:
/// 1.4 ms against 1.0 at 20,000 services (see BENCHMARKS.md).
fn ascii_finding(
    bytes: &[u8],
    range: std::ops::Range<usize>,
    needle: &[u8],
    mut each: impl FnMut(usize),
) -> bool {
    assert!(needle.len() >= 2, "a needle of two bytes or more");
    let first = needle[0];
    let mut high = 0u32;
    let mut at = range.start;
    #[cfg(target_arch = "x86_64")]
    {
        use crate::bytes::Block;
        let second = needle[1];
        // Two blocks a step, each with the block a byte on for each
        // place's second byte, whole in the range and the text.
        let bulk = range.end.min(bytes.len().saturating_sub(1));
        let steps = bulk.saturating_sub(at) / 32;
        let these = bytes[at..at + 32 * steps].as_chunks::<32>().0;
        // None when there is no step (an empty text has no byte after).
        let on =
            (bytes.get(at + 1..at + 1 + 32 * steps)).map_or(&[][..], |on| on.as_chunks::<32>().0);
        for (these, on) in these.iter().zip(on) {
            let (a, b) = these.split_at(16);
            let (a, b) = (
                Block::load(a.try_into().unwrap()),
                Block::load(b.try_into().unwrap()),
            );
            let (a_on, b_on) = on.split_at(16);
            let (a_on, b_on) = (
                Block::load(a_on.try_into().unwrap()),
                Block::load(b_on.try_into().unwrap()),
            );
            high |= a.non_ascii() | b.non_ascii();
            let pairs = (a.eq(first) & a_on.eq(second)).bits()
                | (b.eq(first) & b_on.eq(second)).bits() << 16;
            if pairs != 0 {
                try_places(bytes, at, pairs, needle, &mut each);
            }
            at += 32;
        }
    }
    // The last bytes of the text (or all, elsewhere), one at a time.
    for k in at..range.end {
        high |= u32::from(!bytes[k].is_ascii());
        if bytes[k] == first && bytes[k..].starts_with(needle) {
            each(k);
        }
    }
    high == 0
}

/// Hands `each` the places `at + k` for each bit `k` of `pairs` where
/// `needle` starts. Apart from the pass, which finds a place every few
/// hundred bytes: inlined, its registers pushed the pass's to the stack.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn try_places(
    bytes: &[u8],
    at: usize,
    mut pairs: u32,
    needle: &[u8],
    each: &mut impl FnMut(usize),
) {
    while pairs != 0 {
        let k = at + pairs.trailing_zeros() as usize;
        if bytes[k..].starts_with(needle) {
            each(k);
        }
        pairs &= pairs - 1;
    }
}

/// The fewest items in a run of [`in_order`]: a run of jobs renders to
/// about 64 KB.
const RUN_MIN: usize = 64;

/// The most: four runs held at once stay a few MB whatever the output.
const RUN_MAX: usize = 1_024;

/// Items per run: a sixteenth of them within those bounds. Each run
/// handed between the threads wakes one, which costs more than making a
/// run of cheap items (the entries of an affected set).
fn run_length(items: usize) -> usize {
    (items / 16).clamp(RUN_MIN, RUN_MAX)
}

/// Makes something of each run of items with `make` (which must depend
/// on that run only) and hands each to `each` in order. With many items
/// and two cores, runs are made two at a time, one on each thread, and
/// the two made before are handed to `each` meanwhile: written into a
/// pipe, a pair of runs took longer to write than to make, and the other
/// thread waited for the writing (see BENCHMARKS.md, twenty-second
/// session). At most four runs of at most [`RUN_MAX`] items are held at
/// once, so memory does not grow with the output. `each` runs on this
/// thread; its first error stops the rest.
pub fn in_order<T: Sync, R: Send, E>(
    items: &[T],
    make: impl Fn(&[T]) -> R + Sync,
    mut each: impl FnMut(R) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let runs: Vec<&[T]> = items.chunks(run_length(items.len())).collect();
    if !two_cores() || runs.len() < 4 {
        return runs.into_iter().try_for_each(|run| each(make(run)));
    }
    let inside = crate::arena::inside();
    let mut write = |(first, second): (R, Option<R>)| {
        each(first).and_then(|()| second.map_or(Ok(()), &mut each))
    };
    let mut made: Option<(R, Option<R>)> = None;
    for pair in runs.chunks(2) {
        let mut second = None;
        let mut written = Ok(());
        // In place: `each` need not be sent to another thread.
        let first = rayon::in_place_scope(|scope| {
            let second = &mut second;
            let make = &make;
            scope.spawn(move |_| {
                *second = kept_as_here(inside, || pair.get(1).map(|&run| make(run)));
            });
            if let Some(pair) = made.take() {
                written = write(pair);
            }
            make(pair[0])
        });
        written?;
        made = Some((first, second));
    }
    made.map_or(Ok(()), write)
}

/// Maps each item with `each` into one list, in order. With many items
/// and two cores, two threads take runs of them in turn, each writing its
/// results straight into the list's room: no result is moved once made
/// (15,000 affected entries are megabytes of fresh pages, a fault each
/// 4 KiB, which a copy would take on one thread).
pub fn map<T: Sync, R: Send>(items: &[T], each: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let length = run_length(items.len());
    let runs = items.len().div_ceil(length);
    if !two_cores() || runs < 4 {
        return items.iter().map(each).collect();
    }
    let bounds: Vec<usize> = (1..runs).map(|k| k * length).collect();
    let (list, ()) = fill::in_parts(items.len(), &bounds, |parts| {
        // Each run is taken once: the lock only hands its room over.
        let parts: Vec<Mutex<&mut fill::Part<'_, R>>> = parts.iter_mut().map(Mutex::new).collect();
        let next = AtomicUsize::new(0);
        both(|| {
            loop {
                let k = next.fetch_add(1, Relaxed);
                let Some(part) = parts.get(k) else { break };
                let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
                let run = &items[k * length..((k + 1) * length).min(items.len())];
                for item in run {
                    part.push(each(item));
                }
            }
        });
    });
    list.expect("each run filled its part")
}

/// Runs `f` as a command that runs once runs, on a thread of a pool of
/// two: for tests of the steps split between threads, which a test's own
/// thread (outside any pool) would run in turn.
#[cfg(test)]
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of two threads")
        .install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_handed_on_in_order_and_stop_at_the_first_error() {
        in_pool(|| {
            let items: Vec<usize> = (0..1_000).collect();
            let mut seen = Vec::new();
            let done: std::result::Result<(), ()> = in_order(
                &items,
                |run| run.to_vec(),
                |run| {
                    seen.extend(run);
                    Ok(())
                },
            );
            assert_eq!((done, seen), (Ok(()), items.clone()));

            let mut calls = 0;
            let failed = in_order(
                &items,
                |run| run[0],
                |_| {
                    calls += 1;
                    if calls == 3 { Err("full disk") } else { Ok(()) }
                },
            );
            assert_eq!((failed, calls), (Err("full disk"), 3));
        });
    }

    #[test]
    fn a_map_is_in_order_whatever_thread_made_each_run() {
        in_pool(|| {
            for len in [0, 1, 100, 5_000, 20_001] {
                let items: Vec<usize> = (0..len).collect();
                let mapped = map(&items, usize::to_string);
                let expected: Vec<String> = items.iter().map(usize::to_string).collect();
                assert_eq!(mapped, expected, "{len} items");
            }
        });
    }

    #[test]
    fn large_text_is_checked_and_searched_in_blocks_as_a_whole() {
        const NEEDLE: &[u8] = b"\n[[service]]";
        // Needles followed by a multi-byte character are kept, those
        // followed by `#` are not.
        let kept_in =
            |text: &[u8], at: usize| text[at + NEEDLE.len()..].starts_with("é".as_bytes());
        in_pool(|| {
            // Multi-byte characters and needles across the middle and the
            // blocks' ends, wherever they fall.
            for pad in 0..4 {
                let mut text = "x".repeat(pad);
                while text.len() < 3 << 20 {
                    text.push_str(
                        "é€😀 a line of services.toml\n[[service]]# a comment\n[[service]]",
                    );
                }
                let bytes = text.as_bytes();
                let everywhere: Vec<usize> = (memchr::memmem::find_iter(bytes, NEEDLE))
                    .filter(|&at| kept_in(bytes, at))
                    .collect();
                assert!(everywhere.len() > 30_000);
                let keep = |at| kept_in(bytes, at);
                assert_eq!(
                    utf8_finding(bytes, NEEDLE, keep),
                    Ok((text.as_str(), everywhere.clone()))
                );
                let end = (1000..).find(|&at| text.is_char_boundary(at)).unwrap();
                let small = &text[..end];
                let in_small = (everywhere.iter().copied()).filter(|&at| at + NEEDLE.len() < end);
                assert_eq!(
                    utf8_finding(small.as_bytes(), NEEDLE, |at| kept_in(small.as_bytes(), at)),
                    Ok((small, in_small.collect()))
                );
                for at in [0, text.len() / 2 - 1, text.len() / 2, text.len() - 1] {
                    let mut bytes = text.clone().into_bytes();
                    bytes[at] = 0xFF;
                    let whole = std::str::from_utf8(&bytes).unwrap_err();
                    assert_eq!(
                        utf8_finding(&bytes, NEEDLE, |_| true).unwrap_err(),
                        whole,
                        "bad byte at {at}"
                    );
                }
            }
        });
    }

    /// Text all ASCII but where a character is placed, with needles at
    /// every offset around the blocks' ends and the text's: each is found
    /// once, and each bad byte is told, wherever it falls in the pass.
    #[test]
    fn ascii_text_is_searched_and_checked_in_the_same_pass() {
        const NEEDLE: &[u8] = b"\n[[service]]";
        let reference = |bytes: &[u8]| -> Vec<usize> {
            (memchr::memmem::find_iter(bytes, NEEDLE))
                .filter(|&at| bytes[at + NEEDLE.len()..].starts_with(b"\n"))
                .collect()
        };
        in_pool(|| {
            let mut text = Vec::new();
            let mut k = 0;
            while text.len() < (3 << 20) + 100 {
                // A near miss (`\n[` then something else) and a needle
                // whose line goes on (not kept), then one kept, at every
                // offset modulo 16.
                text.extend_from_slice(b"name = \"a\"\n[settings]\n[[service]]x\n");
                text.extend(std::iter::repeat_n(b'#', k % 37));
                text.extend_from_slice(b"\n[[service]]\n");
                k += 1;
            }
            // The first half's end (where the second half starts) at
            // every offset in a block of 16, with a needle just past it.
            for pad in 0..32 {
                let mut padded = vec![b'x'; pad];
                padded.extend_from_slice(&text);
                let cut = char_start(&padded, padded.len() / 2);
                padded[cut + pad % 16..cut + pad % 16 + NEEDLE.len()].copy_from_slice(NEEDLE);
                padded[cut + pad % 16 + NEEDLE.len()] = b'\n';
                let keep = |at: usize| padded[at + NEEDLE.len()..].starts_with(b"\n");
                let (_, found) = utf8_finding(&padded, NEEDLE, keep).unwrap();
                assert_eq!(found, reference(&padded), "{pad}");
            }
            // A needle that ends the text exactly, and one cut short.
            for tail in [
                &b"\n[[service]]\n"[..],
                b"\n[[service]]",
                b"\n[[serv",
                b"\n",
            ] {
                let mut text = text.clone();
                text.extend_from_slice(tail);
                let keep = |at: usize| text[at + NEEDLE.len()..].starts_with(b"\n");
                let want = reference(&text);
                let (_, found) = utf8_finding(&text, NEEDLE, keep).unwrap();
                assert_eq!(found, want);
                // In short texts, where the pass is mostly its tail.
                for len in [0, 1, 15, 16, 17, 31, 40, 100] {
                    // The search alone, as on text already checked.
                    let short = &text[text.len() - len..];
                    let keep = |at: usize| short[at + NEEDLE.len()..].starts_with(b"\n");
                    assert_eq!(finding(short, NEEDLE, keep), reference(short), "{len}");
                    let short = &text[text.len() - len..];
                    let keep = |at: usize| short[at + NEEDLE.len()..].starts_with(b"\n");
                    let (_, found) = utf8_finding(short, NEEDLE, keep).unwrap();
                    assert_eq!(found, reference(short), "{len}");
                }
            }
            let blocks = [128 << 10, text.len() / 2, text.len() - 20, text.len() - 2];
            for around in blocks {
                for at in around - 17..around + 1 {
                    // A character where it may be torn by a block's end.
                    let mut two = text.clone();
                    two[at..at + 2].copy_from_slice("é".as_bytes());
                    let (checked, found) = utf8_finding(&two, NEEDLE, |_| true).unwrap();
                    assert_eq!(checked.as_bytes(), &two[..]);
                    assert_eq!(
                        found,
                        memchr::memmem::find_iter(&two, NEEDLE).collect::<Vec<_>>()
                    );
                    let mut bad = text.clone();
                    bad[at] = 0x80;
                    assert_eq!(
                        utf8_finding(&bad, NEEDLE, |_| true).unwrap_err(),
                        std::str::from_utf8(&bad).unwrap_err(),
                        "bad byte at {at}"
                    );
                }
            }
        });
    }

    /// A half handed to the other thread from inside a region keeps what
    /// it makes as the region does; from outside, it does not.
    #[test]
    fn the_other_half_is_in_a_region_when_this_one_is() {
        crate::arena::enable();
        in_pool(|| {
            let busy = || {
                // Long enough for the other thread to take the half.
                std::thread::sleep(std::time::Duration::from_millis(20));
                crate::arena::inside()
            };
            let halves = crate::arena::region(|| join(busy, crate::arena::inside));
            assert_eq!(halves, (true, true));
            assert_eq!(join(busy, crate::arena::inside), (false, false));
        });
    }

    /// The pool's other thread is started on another core, then allowed
    /// every core the process may use again.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_placed_thread_may_then_run_on_every_core() {
        let here = placement::current_core().expect("the core this test runs on");
        let allowed = placement::allowed().expect("this process's cores");
        // SAFETY (here and below): sets are valid `cpu_set_t`s, read at
        // indices below their size or filled by the kernel.
        let cores = (0..libc::CPU_SETSIZE as usize)
            .filter(|&core| unsafe { libc::CPU_ISSET(core, &allowed) })
            .count();
        match placement::other_core(here) {
            Some(other) => assert!(other != here && unsafe { libc::CPU_ISSET(other, &allowed) }),
            None => assert_eq!(cores, 1, "another core is found when there is one"),
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .spawn_handler(placement::spawn)
            .start_handler(placement::started)
            .build()
            .expect("a pool of two threads");
        let own = pool.broadcast(|_| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
            set
        });
        assert_eq!(own.len(), 2);
        for set in own {
            assert!(
                unsafe { libc::CPU_EQUAL(&set, &allowed) },
                "every core allowed"
            );
        }
    }

    #[test]
    fn outside_a_pool_both_halves_run_here_in_turn() {
        let here = std::thread::current().id();
        let (a, b) = join(
            || std::thread::current().id(),
            || std::thread::current().id(),
        );
        assert_eq!((a, b), (here, here));
        let mut order = Vec::new();
        let order_of = std::sync::Mutex::new(&mut order);
        join(
            || order_of.lock().unwrap().push('a'),
            || order_of.lock().unwrap().push('b'),
        );
        assert_eq!(order, ['a', 'b']);
    }

    #[test]
    fn a_panic_in_a_map_reaches_the_caller() {
        in_pool(|| {
            let items: Vec<usize> = (0..20_000).collect();
            let outcome = std::panic::catch_unwind(|| {
                map(&items, |&i| {
                    assert!(i != 15_000, "item 15000");
                    i.to_string()
                })
            });
            assert!(outcome.is_err());
        });
    }
}
