//! A connection's channels by id, without I/O.
//!
//! Ids are allocated by two from the side's first id (odd on the
//! controller, even on the worker), so each side knows which ids are its
//! own. A channel leaves the live table when both directions are over; a
//! handle may still hold it, and a reference to it sent back by the peer
//! must reach that same channel (its identity survives a round trip), so
//! ended channels are kept weakly and pruned as the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// What a channel id names.
#[derive(Debug)]
pub enum Lookup<T> {
    /// A live channel, or an ended one a handle still holds.
    Known(Arc<T>),
    /// One of ours that ended and that nobody holds: a new handle to it
    /// reports the end at once.
    EndedOurs,
    /// One the peer opened that we have not seen: a new channel.
    Peers,
}

/// The channels of one connection.
///
/// ```
/// use std::sync::Arc;
/// use remex_proto::connection::{ChanTable, Lookup};
/// let mut t = ChanTable::new(1); // the controller's ids: 1, 3, 5...
/// let id = t.allocate();
/// t.insert(id, Arc::new("a channel"));
/// assert!(t.get(id).is_some());
/// assert!(matches!(t.lookup(2), Lookup::Peers));
/// ```
#[derive(Debug)]
pub struct ChanTable<T> {
    live: HashMap<u32, Arc<T>>,
    ended: HashMap<u32, Weak<T>>,
    /// Prune dead entries of `ended` when it reaches this size.
    prune_at: usize,
    next_id: u32,
}

impl<T> ChanTable<T> {
    /// A table whose own ids start at `first_id`.
    pub fn new(first_id: u32) -> Self {
        ChanTable {
            live: HashMap::new(),
            ended: HashMap::new(),
            prune_at: 64,
            next_id: first_id,
        }
    }

    /// A fresh id of ours.
    pub fn allocate(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(2);
        id
    }

    /// Registers a live channel.
    pub fn insert(&mut self, id: u32, chan: Arc<T>) {
        self.live.insert(id, chan);
    }

    /// The live channel `id`, for messages from the peer.
    pub fn get(&self, id: u32) -> Option<Arc<T>> {
        self.live.get(&id).cloned()
    }

    /// The channel ended both ways: it leaves the live table and stays
    /// reachable while a handle holds it.
    pub fn remove(&mut self, id: u32) {
        if let Some(chan) = self.live.remove(&id) {
            if self.ended.len() >= self.prune_at {
                self.ended.retain(|_, w| w.strong_count() > 0);
                // Amortized: at most one pass per doubling of live entries.
                self.prune_at = (self.ended.len() * 2).max(64);
            }
            self.ended.insert(id, Arc::downgrade(&chan));
        }
    }

    /// What a reference to channel `id` (inside a value or a request)
    /// names.
    pub fn lookup(&self, id: u32) -> Lookup<T> {
        if let Some(chan) = self.live.get(&id) {
            return Lookup::Known(chan.clone());
        }
        if let Some(chan) = self.ended.get(&id).and_then(Weak::upgrade) {
            return Lookup::Known(chan);
        }
        let ours = id % 2 == self.next_id % 2 && id < self.next_id;
        if ours {
            Lookup::EndedOurs
        } else {
            Lookup::Peers
        }
    }

    /// Takes every live channel out (the connection is lost).
    pub fn drain(&mut self) -> Vec<Arc<T>> {
        self.live.drain().map(|(_, c)| c).collect()
    }

    /// Live channels.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no channel is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    #[cfg(test)]
    fn ended_entries(&self) -> usize {
        self.ended.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_side_keep_its_parity() {
        let mut controller = ChanTable::<()>::new(1);
        let mut worker = ChanTable::<()>::new(2);
        assert_eq!([controller.allocate(), controller.allocate()], [1, 3]);
        assert_eq!([worker.allocate(), worker.allocate()], [2, 4]);
    }

    #[test]
    fn a_channel_sent_to_the_peer_and_back_is_the_same_channel() {
        let mut t = ChanTable::new(1);
        let id = t.allocate();
        let chan = Arc::new("ours");
        t.insert(id, chan.clone());
        // Live: the reference reaches it.
        assert!(matches!(t.lookup(id), Lookup::Known(c) if Arc::ptr_eq(&c, &chan)));
        // Ended both ways while a handle holds it: still the same one.
        t.remove(id);
        assert!(t.get(id).is_none(), "no more messages reach it");
        assert!(matches!(t.lookup(id), Lookup::Known(c) if Arc::ptr_eq(&c, &chan)));
        // Nobody holds it: a reference to it names an ended channel, not
        // a new one of the peer's.
        drop(chan);
        assert!(matches!(t.lookup(id), Lookup::EndedOurs));
    }

    #[test]
    fn an_unknown_id_of_the_peers_parity_or_beyond_ours_is_the_peers() {
        let mut t = ChanTable::<()>::new(1);
        t.allocate();
        assert!(matches!(t.lookup(2), Lookup::Peers));
        assert!(
            matches!(t.lookup(5), Lookup::Peers),
            "not allocated here yet"
        );
        assert!(matches!(t.lookup(1), Lookup::EndedOurs));
    }

    #[test]
    fn ended_channels_nobody_holds_are_pruned_as_the_map_grows() {
        let mut t = ChanTable::new(1);
        for _ in 0..10_000 {
            let id = t.allocate();
            t.insert(id, Arc::new(id));
            t.remove(id);
        }
        assert_eq!(t.len(), 0);
        assert!(
            t.ended_entries() <= 64,
            "{} dead entries kept",
            t.ended_entries()
        );
    }

    #[test]
    fn losing_the_connection_takes_every_live_channel() {
        let mut t = ChanTable::new(2);
        for _ in 0..3 {
            let id = t.allocate();
            t.insert(id, Arc::new(id));
        }
        assert_eq!(t.drain().len(), 3);
        assert_eq!(t.len(), 0);
    }
}
