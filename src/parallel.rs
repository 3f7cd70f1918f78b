//! Work split between two threads where a large manifest or plan makes it
//! worth a thread: the machines ripple runs on have two cores or more.

pub mod fill;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Whether a second thread can run beside this one.
pub fn two_cores() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
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
/// and two cores, a second thread makes every other run while this one
/// makes the rest. At most four runs of at most [`RUN_MAX`] items are
/// held at once, so memory does not grow with the output. `each` runs on
/// this thread; its first error stops the rest.
pub fn in_order<T: Sync, R: Send, E>(
    items: &[T],
    make: impl Fn(&[T]) -> R + Sync,
    mut each: impl FnMut(R) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let runs: Vec<&[T]> = items.chunks(run_length(items.len())).collect();
    if !two_cores() || runs.len() < 4 {
        return runs.into_iter().try_for_each(|run| each(make(run)));
    }
    let make = &make;
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<R>(2);
        let theirs: Vec<&[T]> = runs.iter().skip(1).step_by(2).copied().collect();
        scope.spawn(move || {
            for run in theirs {
                // Nobody listens once `each` failed: stop.
                if send.send(make(run)).is_err() {
                    break;
                }
            }
        });
        for (k, run) in runs.into_iter().enumerate() {
            let made = match k % 2 {
                0 => make(run),
                // The other thread panicked: its runs are made here.
                _ => receive.recv().unwrap_or_else(|_| make(run)),
            };
            each(made)?;
        }
        Ok(())
    })
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
        let take = || loop {
            let k = next.fetch_add(1, Relaxed);
            let Some(part) = parts.get(k) else { break };
            let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
            let run = &items[k * length..((k + 1) * length).min(items.len())];
            for item in run {
                part.push(each(item));
            }
        };
        std::thread::scope(|scope| {
            let helper = scope.spawn(take);
            take();
            if let Err(panic) = helper.join() {
                std::panic::resume_unwind(panic);
            }
        });
    });
    list.expect("each run filled its part")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_handed_on_in_order_and_stop_at_the_first_error() {
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
    }

    #[test]
    fn a_map_is_in_order_whatever_thread_made_each_run() {
        for len in [0, 1, 100, 5_000, 20_001] {
            let items: Vec<usize> = (0..len).collect();
            let mapped = map(&items, usize::to_string);
            let expected: Vec<String> = items.iter().map(usize::to_string).collect();
            assert_eq!(mapped, expected, "{len} items");
        }
    }

    #[test]
    fn a_panic_in_a_map_reaches_the_caller() {
        let items: Vec<usize> = (0..20_000).collect();
        let outcome = std::panic::catch_unwind(|| {
            map(&items, |&i| {
                assert!(i != 15_000, "item 15000");
                i.to_string()
            })
        });
        assert!(outcome.is_err());
    }
}
