//! A planned chunk's batches in flight: up to `batches_in_flight` PutLogEvents calls at once,
//! skipping what an earlier attempt of the chunk delivered.
//!
//! Batches are independent calls (no sequence tokens; CloudWatch orders a stream's events by
//! time), so only memory bounds how many are in flight. One rule keeps creation single: a
//! batch to a stream not yet known to exist waits while a call to its group is in flight, so
//! a missing group or stream is created once, not by every batch racing to it. After a RETRY
//! no new call starts for that batch's role (or for the instance's own credentials); those in
//! flight finish and count, and batches of other roles go on: a role whose AssumeRole or
//! writes fail holds only its own records.

use crate::aws::delivery::{BatchOutcome, Delivery};
use crate::core::batch::{framed_run, LogEvent};
use crate::core::naming::StreamKey;
use crate::core::plan::Plan;
use crate::sync::lock;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use tokio::time::Instant;

/// How many streams written to are remembered (beyond it, batches to others go one per group).
const KNOWN_STREAMS: usize = 4096;

/// Streams this instance has written to: a bounded set, kept only when calls can overlap.
#[derive(Debug, Default)]
pub struct KnownStreams {
    streams: Mutex<HashSet<StreamKey>>,
}

impl KnownStreams {
    fn contains(&self, to: &StreamKey) -> bool {
        lock(&self.streams).contains(to)
    }

    fn note(&self, to: &StreamKey) {
        let mut known = lock(&self.streams);
        if known.len() < KNOWN_STREAMS && !known.contains(to) {
            known.insert(to.clone());
        }
    }
}

/// How the batches of one flush are sent.
pub struct Dispatch<'a> {
    pub delivery: &'a Delivery,
    pub deadline: Instant,
    /// PutLogEvents calls in flight at once (`batches_in_flight`).
    pub max_calls: usize,
    pub known: &'a KnownStreams,
}

/// What became of the batches a flush sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub delivered: usize,
    pub dropped: usize,
    /// Some batch must be retried: the chunk answers RETRY.
    pub retry: bool,
    /// Batches started whose events were sent straight from the arena (not copied).
    pub from_arena: usize,
}

impl Dispatch<'_> {
    /// Sends every batch of `plan` not yet `done`, marking each delivered or dropped one done.
    /// `arena` is the plan's arena, shared with the requests that send from it. `bodies` is a
    /// pool of request-body buffers, one per call in flight, reused across flushes.
    pub async fn run(&self, plan: &Plan, arena: &Bytes, done: &mut [bool], bodies: &mut Vec<Vec<u8>>) -> Sent {
        let mut sent = Sent::default();
        let mut waiting: VecDeque<usize> = (0..plan.batches.len()).filter(|&i| !done[i]).collect();
        // every body's SigV4 hash at once: side by side, they cost less than one by one
        let (sendable, batches): (Vec<usize>, Vec<(&StreamKey, &[LogEvent])>) =
            waiting.iter().filter_map(|&i| Some((i, (plan.key_of(i)?, &plan.events[plan.batches[i].clone()])))).unzip();
        let mut hashes = vec![None; plan.batches.len()];
        for (&i, digest) in sendable.iter().zip(Delivery::framed_body_hashes(arena, &batches)) {
            hashes[i] = digest;
        }
        // the calls, and the (batch, group) of each
        let (mut calls, mut calling) = (FuturesUnordered::new(), Vec::<(usize, &str)>::new());
        // roles (None: the instance's own) a batch of which answered RETRY
        let mut held: Vec<Option<&str>> = Vec::new();
        loop {
            while calls.len() < self.max_calls {
                let startable = waiting.iter().position(|&i| {
                    plan.key_of(i).is_none_or(|to| {
                        !held.contains(&to.role.as_deref())
                            && (!calling.iter().any(|(_, g)| *g == to.group) || self.known(to))
                    })
                });
                let Some(i) = startable.and_then(|p| waiting.remove(p)) else { break };
                let Some(to) = plan.key_of(i) else { continue };
                let events = &plan.events[plan.batches[i].clone()];
                sent.from_arena += framed_run(events).is_some() as usize;
                let body = bodies.pop().unwrap_or_default();
                let sha256 = hashes[i];
                calling.push((i, to.group.as_str()));
                calls.push(async move {
                    let (outcome, body) = self.delivery.send(to, arena, events, self.deadline, body, sha256).await;
                    (i, to, outcome, body)
                });
            }
            let Some((i, to, outcome, body)) = calls.next().await else { break };
            calling.retain(|(j, _)| *j != i);
            bodies.push(body);
            match outcome {
                BatchOutcome::Delivered => {
                    sent.delivered += 1;
                    if self.max_calls > 1 {
                        self.known.note(to);
                    }
                }
                BatchOutcome::Dropped => sent.dropped += 1,
                BatchOutcome::Retry => {
                    sent.retry = true;
                    if !held.contains(&to.role.as_deref()) {
                        held.push(to.role.as_deref());
                    }
                    continue;
                }
            }
            done[i] = true;
        }
        sent
    }

    fn known(&self, to: &StreamKey) -> bool {
        self.known.contains(to)
    }
}
