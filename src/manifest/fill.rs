//! A list that two threads fill at once, each its own part of one
//! allocation, so that the second part is not copied after the first once
//! both are read: at 20,000 services that copy is 3 MB written onto fresh
//! pages, each page a fault (costly in a virtual machine).

use std::mem::MaybeUninit;

/// Fills a list of `len` items in two parts at once: `fill` gets the
/// room for the first `at` items and for the rest, and may hand each to
/// its own thread. The list is whole when both parts were filled;
/// otherwise it is `None` and what the parts hold is dropped. `fill`'s
/// own result is returned beside it.
pub fn in_two_parts<T, R>(
    len: usize,
    at: usize,
    fill: impl FnOnce(&mut Part<'_, T>, &mut Part<'_, T>) -> R,
) -> (Option<Vec<T>>, R) {
    let mut list = Vec::with_capacity(len);
    let (first, second) = list.spare_capacity_mut()[..len].split_at_mut(at.min(len));
    let (mut first, mut second) = (Part::new(first), Part::new(second));
    let result = fill(&mut first, &mut second);
    if !(first.is_full() && second.is_full()) {
        return (None, result);
    }
    // Their items now belong to the list: not dropped with the parts.
    std::mem::forget(first);
    std::mem::forget(second);
    // SAFETY: the two full parts together wrote every slot of
    // `spare_capacity_mut()[..len]`, which they split between them, and
    // none of their items was dropped.
    unsafe { list.set_len(len) };
    (Some(list), result)
}

/// One part of the room [`in_two_parts`] gives, written in order. What
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
        let (list, ()) = in_two_parts(5, 2, |first, second| {
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
        let (list, ()) = in_two_parts(3, 1, |first, second| {
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
        let (list, ()) = in_two_parts(2, 1, |first, second| {
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
        let (list, ()) = in_two_parts(2, 2, |first, _| {
            first.push(1);
            first.push(2);
        });
        assert_eq!(list, Some(vec![1, 2]));
    }
}
