//! A queue that serves its keys in turn: each key's items in the order they came, one item of
//! each key with any waiting before a second of any. One account's hundred conversions then
//! hold another's first one up by one turn, not by a hundred.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub struct FairQueue<K, T> {
    /// Keys with items waiting, in the order they are served next.
    keys: VecDeque<K>,
    waiting: HashMap<K, VecDeque<T>>,
}

impl<K, T> Default for FairQueue<K, T> {
    fn default() -> Self {
        Self {
            keys: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, T> FairQueue<K, T> {
    /// Queues `item` of `key`: after `key`'s others; a key with none waiting joins the round
    /// last.
    pub fn push(&mut self, key: K, item: T) {
        let items = self.waiting.entry(key.clone()).or_default();
        if items.is_empty() {
            self.keys.push_back(key);
        }
        items.push_back(item);
    }

    /// The next item: the oldest of the key whose turn it is, which then goes to the back of the
    /// round if it has more.
    pub fn pop(&mut self) -> Option<(K, T)> {
        let key = self.keys.pop_front()?;
        let items = self.waiting.get_mut(&key)?;
        let item = items.pop_front()?;
        if items.is_empty() {
            self.waiting.remove(&key);
        } else {
            self.keys.push_back(key.clone());
        }
        Some((key, item))
    }

    /// Items waiting, of every key.
    pub fn len(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_turns_and_each_keeps_its_own_order() {
        let mut queue = FairQueue::default();
        for n in 1..=3 {
            queue.push("busy", n);
        }
        queue.push("quiet", 1);
        queue.push("other", 1);
        let served: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(
            served,
            [
                ("busy", 1),
                ("quiet", 1),
                ("other", 1),
                ("busy", 2),
                ("busy", 3)
            ]
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn a_key_that_comes_back_waits_for_the_round() {
        let mut queue = FairQueue::default();
        queue.push("a", 1);
        queue.push("a", 2);
        queue.push("b", 1);
        assert_eq!(queue.pop(), Some(("a", 1)));
        assert_eq!(queue.len(), 2);
        // `c` arrives while `a` waits for its second: `b`, then `a`, then `c`.
        queue.push("c", 1);
        assert_eq!(queue.pop(), Some(("b", 1)));
        // `b` had nothing left; new work of it joins the round last.
        queue.push("b", 2);
        let rest: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest, [("a", 2), ("c", 1), ("b", 2)]);
        assert_eq!(queue.len(), 0);
    }
}
