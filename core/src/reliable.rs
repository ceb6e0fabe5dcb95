//! WCF-style reliable delivery for one member: every message gets the next sequence number and
//! stays buffered until the member acknowledges it, so a member that reconnects with the last
//! sequence it saw gets exactly what it missed, in order. The buffer is bounded: a member too far
//! behind gets a fresh snapshot instead (and the sequence carries on from there).

use std::collections::VecDeque;

/// Messages kept per member for a resume.
pub const RESUME_BUFFER: usize = 256;

/// The messages one member has not acknowledged yet.
#[derive(Debug, Clone)]
pub struct Outbox<M> {
    /// Sequence number of the last message sent (0 = none yet).
    last: u64,
    /// `(sequence, message)`, oldest first, all after the last acknowledged one.
    unacked: VecDeque<(u64, M)>,
    capacity: usize,
    /// Messages dropped unacknowledged because the buffer was full: a resume from before them
    /// needs a snapshot.
    dropped_through: u64,
}

/// What a reconnecting member gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume<M> {
    /// Exactly the messages after the member's last sequence, in order.
    Replay(Vec<(u64, M)>),
    /// Too far behind (or ahead, i.e. from another life): start from a snapshot.
    Snapshot,
}

impl<M: Clone> Outbox<M> {
    pub fn new(capacity: usize) -> Self {
        Self {
            last: 0,
            unacked: VecDeque::new(),
            capacity: capacity.max(1),
            dropped_through: 0,
        }
    }

    /// The sequence number of the last message.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Numbers and buffers `message`; returns its sequence number.
    pub fn push(&mut self, message: M) -> u64 {
        self.last += 1;
        if self.unacked.len() == self.capacity
            && let Some((seq, _)) = self.unacked.pop_front()
        {
            self.dropped_through = seq;
        }
        self.unacked.push_back((self.last, message));
        self.last
    }

    /// The member has everything up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|(s, _)| *s <= seq) {
            self.unacked.pop_front();
        }
    }

    /// What to send a member that reconnects having seen everything up to `seen`.
    pub fn resume(&mut self, seen: u64) -> Resume<M> {
        if seen > self.last || seen < self.dropped_through {
            return Resume::Snapshot;
        }
        self.ack(seen);
        Resume::Replay(self.unacked.iter().cloned().collect())
    }

    /// After a snapshot the member is up to date: nothing older needs keeping.
    pub fn snapshot_sent(&mut self) {
        self.unacked.clear();
        self.dropped_through = self.last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_replays_exactly_the_missed_messages_in_order() {
        let mut outbox = Outbox::new(8);
        for m in ["a", "b", "c", "d"] {
            outbox.push(m);
        }
        outbox.ack(1);
        // The member saw b (2) but its ack was lost with the connection.
        assert_eq!(outbox.resume(2), Resume::Replay(vec![(3, "c"), (4, "d")]));
        // Nothing is sent twice: a second resume from 4 replays nothing.
        assert_eq!(outbox.resume(4), Resume::Replay(vec![]));
        assert_eq!(outbox.push("e"), 5);
    }

    #[test]
    fn too_far_behind_gets_a_snapshot_and_then_carries_on() {
        let mut outbox = Outbox::new(2);
        for m in 1..=5 {
            outbox.push(m);
        }
        // 1..=3 were dropped from the full buffer: a member at 2 missed 3 for good.
        assert_eq!(outbox.resume(2), Resume::Snapshot);
        assert_eq!(outbox.resume(3), Resume::Replay(vec![(4, 4), (5, 5)]));
        // A sequence from the future (another server life) also needs a snapshot.
        assert_eq!(outbox.resume(99), Resume::Snapshot);
        outbox.snapshot_sent();
        assert_eq!(outbox.resume(5), Resume::Replay(vec![]));
        assert_eq!(outbox.resume(4), Resume::Snapshot);
    }

    #[test]
    fn the_last_sequence_is_that_of_the_newest_message() {
        let mut outbox = Outbox::new(8);
        assert_eq!(outbox.last(), 0);
        for m in ["a", "b", "c"] {
            outbox.push(m);
        }
        assert_eq!(outbox.last(), 3);
    }
}
