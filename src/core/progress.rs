//! What of a chunk CloudWatch already accepted, kept across Fluent Bit's retries.
//!
//! When a flush answers RETRY after some of its batches were accepted, Fluent Bit re-sends the
//! whole chunk later. Batches are cut deterministically from the chunk's bytes, so remembering
//! "chunk X: batches 0 and 2 done" lets the retry skip them: no duplicates. Entries are keyed by
//! a 128-bit fingerprint of tag and bytes, bounded in number and age; losing one (evicted)
//! only means its batches may be sent twice — never that anything is lost. Pure: no I/O.

use crate::core::plan::Plan;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Identifies a chunk by its tag and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkId {
    hash: [u64; 2],
    len: usize,
}

impl ChunkId {
    /// Two independent multiply-rotate hashes over 8-byte words: fast, and no dependency.
    pub fn of(tag: &str, chunk: &[u8]) -> ChunkId {
        const K: [u64; 2] = [0x9E37_79B9_7F4A_7C15, 0xC2B2_AE3D_27D4_EB4F];
        let mut h = [0x243F_6A88_85A3_08D3 ^ chunk.len() as u64, 0x1319_8A2E_0370_7344 ^ tag.len() as u64];
        let mut mix = |word: u64| {
            for (h, k) in h.iter_mut().zip(K) {
                *h = (h.rotate_left(23) ^ word).wrapping_mul(k);
            }
        };
        let words = chunk.chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            mix(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        }
        for part in [rest, tag.as_bytes()] {
            for w in part.chunks(8) {
                let mut b = [0u8; 8];
                b[..w.len()].copy_from_slice(w);
                mix(u64::from_le_bytes(b) ^ (w.len() as u64) << 56);
            }
        }
        let finish = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x
        };
        ChunkId { hash: [finish(h[0]), finish(h[1])], len: chunk.len() }
    }

    /// The id of a chunk from what it became: its messages in record order, plus the plan's
    /// hash of each record's time (to the nanosecond) and destination. The same chunk always
    /// plans the same, so Fluent Bit's retry of it is recognised without keeping a copy of it.
    /// `arena` is the plan's (shared with the requests, out of the plan, while a flush sends).
    pub fn of_plan(tag: &str, plan: &Plan, arena: &[u8]) -> ChunkId {
        let messages = ChunkId::of(tag, arena);
        let identity = plan.identity ^ (plan.identity >> 29);
        ChunkId {
            hash: [
                messages.hash[0] ^ identity,
                messages.hash[1] ^ identity.rotate_left(32).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
            ],
            len: arena.len(),
        }
    }
}

/// Per batch of a chunk: already accepted (or deliberately dropped) by an earlier attempt.
pub type Done = Vec<bool>;

struct Entry {
    done: Done,
    stored: Instant,
}

/// Progress of chunks that answered RETRY, awaiting their retry.
pub struct Progress {
    entries: HashMap<ChunkId, Entry>,
    order: VecDeque<ChunkId>,
    capacity: usize,
    max_age: Duration,
}

impl Progress {
    /// Fluent Bit's retry backoff tops out at about half an hour; an hour covers it.
    pub fn new(capacity: usize) -> Progress {
        Progress { entries: HashMap::new(), order: VecDeque::new(), capacity, max_age: Duration::from_secs(3600) }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes the chunk's progress out (the flush owns it while it runs), if it has
    /// `batches` batches as before.
    pub fn take(&mut self, id: &ChunkId, batches: usize) -> Option<Done> {
        let entry = self.entries.remove(id)?;
        self.order.retain(|o| o != id);
        (entry.done.len() == batches).then_some(entry.done)
    }

    /// Stores a chunk's progress after a RETRY; drops the oldest entries past the bounds.
    pub fn put(&mut self, id: ChunkId, done: Done, now: Instant) {
        if !done.iter().any(|&d| d) {
            return; // nothing accepted: nothing to skip next time
        }
        if self.entries.insert(id, Entry { done, stored: now }).is_none() {
            self.order.push_back(id);
        }
        while let Some(oldest) = self.order.front().copied() {
            let too_old = self.entries.get(&oldest).is_some_and(|e| now.duration_since(e.stored) > self.max_age);
            if self.order.len() <= self.capacity && !too_old {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{Encoder, MessageFormat};
    use crate::core::naming::NameRule;
    use crate::core::plan::Naming;
    use crate::core::template::Vars;

    #[test]
    fn ids_tell_tags_bytes_and_lengths_apart() {
        let a = ChunkId::of("t", b"0123456789");
        assert_eq!(a, ChunkId::of("t", b"0123456789"));
        assert_ne!(a, ChunkId::of("u", b"0123456789"));
        assert_ne!(a, ChunkId::of("t", b"0123456788"));
        assert_ne!(a, ChunkId::of("t", b"01234567890"));
        assert_ne!(ChunkId::of("ab", b""), ChunkId::of("a", b"b"));
    }

    #[test]
    fn progress_round_trip_and_bounds() {
        let now = Instant::now();
        let mut p = Progress::new(2);
        let ids: Vec<ChunkId> = (0..4u8).map(|i| ChunkId::of("t", &[i])).collect();
        p.put(ids[0], vec![false, false], now); // nothing done: not kept
        assert!(p.is_empty());
        p.put(ids[0], vec![true, false], now);
        assert_eq!(p.take(&ids[0], 3), None, "a different batch count is a different chunk");
        p.put(ids[0], vec![true, false], now);
        assert_eq!(p.take(&ids[0], 2), Some(vec![true, false]));
        assert!(p.is_empty());
        for id in &ids[1..] {
            p.put(*id, vec![true], now);
        }
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(&ids[1], 1), None, "the oldest was evicted");
        p.put(ids[1], vec![true], now + Duration::from_secs(7200));
        assert_eq!(p.len(), 1, "entries past their age are dropped");
    }

    #[test]
    fn a_chunk_is_known_by_its_plan_to_the_nanosecond() {
        let (group, stream) = (NameRule::Fixed(String::new()), NameRule::TagPrefix(String::new()));
        let vars = Vars { uuid: "u", ecs: None };
        let id = |nanos: u32, msg: &str| {
            let mut chunk = vec![0x92, 0x92, 0xd7, 0x00];
            chunk.extend(100u32.to_be_bytes());
            chunk.extend(nanos.to_be_bytes());
            chunk.push(0x80);
            chunk.extend(rmp_serde::to_vec(&serde_json::json!({ "log": msg })).unwrap());
            let mut plan = Plan::default();
            let naming = Naming { group: &group, stream: &stream, vars: &vars, roles: None, role_map: None };
            plan.build(&chunk, "t", naming, &MessageFormat::default(), &mut Encoder::new());
            ChunkId::of_plan("t", &plan, &plan.arena)
        };
        assert_eq!(id(5, "a"), id(5, "a"));
        // same millisecond, same message: still another chunk
        assert_ne!(id(5, "a"), id(6, "a"));
        assert_ne!(id(5, "a"), id(5, "b"));
    }
}
