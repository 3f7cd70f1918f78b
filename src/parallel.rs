//! Work split between two threads where a large manifest or plan makes it
//! worth a thread: the machines ripple runs on have two cores or more.

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
}
