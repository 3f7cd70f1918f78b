//! A list that threads fill at once, each its own parts of one
//! allocation, so that no part is copied after another once all are
//! read: at 20,000 services such a copy is megabytes written onto fresh
//! pages, each page a fault (costly in a virtual machine).

use std::mem::MaybeUninit;

/// Fills a list of `len` items in parts at once: part `k` holds the
/// items from `at[k - 1]` (0 for the first) up to `at[k]` (`len` for the
/// last), so `at` must be ascending and at most `len`. `fill` gets the
/// room for every part, and may hand each to its own thread. The list is
/// whole when every part was filled; otherwise it is `None` and what the
/// parts hold is dropped. `fill`'s own result is returned beside it.
pub fn in_parts<T, R>(
    len: usize,
    at: &[usize],
    fill: impl FnOnce(&mut [Part<'_, T>]) -> R,
) -> (Option<Vec<T>>, R) {
    let mut list = Vec::with_capacity(len);
    let mut parts = Vec::with_capacity(at.len() + 1);
    let mut rest = &mut list.spare_capacity_mut()[..len];
    let mut start = 0;
    for &end in at {
        let end = end.clamp(start, len);
        let (part, after) = rest.split_at_mut(end - start);
        parts.push(Part::new(part));
        (rest, start) = (after, end);
    }
    parts.push(Part::new(rest));
    let result = fill(&mut parts);
    if !parts.iter().all(Part::is_full) {
        return (None, result);
    }
    // Their items now belong to the list: not dropped with the parts.
    parts.into_iter().for_each(std::mem::forget);
    // SAFETY: the full parts together wrote every slot of
    // `spare_capacity_mut()[..len]`, which they split between them, and
    // none of their items was dropped.
    unsafe { list.set_len(len) };
    (Some(list), result)
}

/// One part of the room [`in_parts`] gives, written in order. What
/// it holds is dropped with it unless the list takes it.
pub struct Part<'s, T> {
    room: &'s mut [MaybeUninit<T>],
    written: usize,
}

impl<'s, T> Part<'s, T> {
    fn new(room: &'s mut [MaybeUninit<T>]) -> Part<'s, T> {
        Part { room, written: 0 }
    }

    /// Writes the next item; `false` (and `item` dropped) when the part
    /// is already full.
    pub fn push(&mut self, item: T) -> bool {
        match self.room.get_mut(self.written) {
            Some(slot) => {
                slot.write(item);
                self.written += 1;
                true
            }
            None => false,
        }
    }

    fn is_full(&self) -> bool {
        self.written == self.room.len()
    }
}

impl<T> Drop for Part<'_, T> {
    fn drop(&mut self) {
        for slot in &mut self.room[..self.written] {
            // SAFETY: the first `written` slots were written by `push` and
            // are dropped only here, once.
            unsafe { slot.assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn full_parts_make_the_list_in_order() {
        let (list, ()) = in_parts(5, &[2], |parts| {
            let [first, second] = parts else {
                panic!("two parts")
            };
            for i in [3, 4, 5] {
                assert!(second.push(i.to_string()));
            }
            for i in [1, 2] {
                assert!(first.push(i.to_string()));
            }
            assert!(!first.push("6".into()), "the first part holds two");
        });
        assert_eq!(
            list,
            Some(["1", "2", "3", "4", "5"].map(String::from).to_vec())
        );
    }

    #[test]
    fn a_part_left_short_drops_what_every_part_holds() {
        let item = Rc::new(());
        let (list, ()) = in_parts(3, &[1], |parts| {
            let [first, second] = parts else {
                panic!("two parts")
            };
            assert!(first.push(Rc::clone(&item)));
            assert!(second.push(Rc::clone(&item)));
            assert_eq!(Rc::strong_count(&item), 3);
        });
        assert!(list.is_none());
        assert_eq!(
            Rc::strong_count(&item),
            1,
            "nothing leaked, nothing dropped twice"
        );
    }

    #[test]
    fn finished_items_are_dropped_once_with_the_list() {
        let item = Rc::new(());
        let (list, ()) = in_parts(2, &[1], |parts| {
            let [first, second] = parts else {
                panic!("two parts")
            };
            assert!(first.push(Rc::clone(&item)));
            assert!(second.push(Rc::clone(&item)));
        });
        let list = list.expect("both parts full");
        assert_eq!(Rc::strong_count(&item), 3);
        drop(list);
        assert_eq!(Rc::strong_count(&item), 1);
    }

    #[test]
    fn one_part_may_be_empty() {
        let (list, ()) = in_parts(2, &[2], |parts| {
            parts[0].push(1);
            parts[0].push(2);
        });
        assert_eq!(list, Some(vec![1, 2]));
    }

    #[test]
    fn many_parts_each_hold_their_range() {
        let (list, ()) = in_parts(6, &[1, 1, 4], |parts| {
            assert_eq!(parts.len(), 4);
            assert!(!parts[1].push(0), "the second part is empty");
            for (k, items) in [(3, [4, 5]), (2, [1, 2])] {
                for i in items {
                    assert!(parts[k].push(i));
                }
            }
            assert!(parts[2].push(3));
            assert!(parts[0].push(0));
        });
        assert_eq!(list, Some(vec![0, 1, 2, 3, 4, 5]));
    }

    #[test]
    fn one_part_is_the_whole_list() {
        let (list, ()) = in_parts(2, &[], |parts| {
            parts[0].push('a');
            parts[0].push('b');
        });
        assert_eq!(list, Some(vec!['a', 'b']));
    }
}
