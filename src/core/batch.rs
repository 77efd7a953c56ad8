//! Events → PutLogEvents batches that honour every documented rule: at most 1,048,576 bytes
//! counting each message's UTF-8 length + 26, at most 10,000 events, a time span under 24 hours,
//! and chronological order (a stable sort, so equal timestamps keep record order).

use crate::core::json::{push_escaped_quoted, push_i64};
use std::ops::Range;

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// A batch's newest event must be less than 24 hours after its oldest.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// What the plan writes before each event's escaped message in the arena (then the timestamp,
/// then `FRAME_MESSAGE`), so that the events of a batch lying back to back in the arena are
/// already the `logEvents` array of its request body: no copy of them is needed (`body_parts`).
pub const FRAME_OPEN: &[u8] = b",{\"timestamp\":";
pub const FRAME_MESSAGE: &[u8] = b",\"message\":\"";
/// What the plan writes after each event's escaped message.
pub const FRAME_CLOSE: &[u8] = b"\"}";
/// What ends every request body, after the last event.
pub const BODY_TAIL: &[u8] = b"]}";

/// One CloudWatch event: a timestamp and its message, stored in a shared arena already escaped
/// as the content of a JSON string (`Encoder::encode_escaped`). The plan stores it framed as
/// `,{"timestamp":T,"message":"…"}` (`write_frame_open`, `FRAME_CLOSE`); the frame's place is
/// derived from the message's (`frame`), so the event stays 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEvent {
    pub timestamp: i64,
    /// Where the escaped message starts in the arena, and its stored length.
    pub start: u32,
    pub stored: u32,
    /// The message's own length in bytes (what CloudWatch counts).
    pub len: u32,
    /// Which (group, stream) of the plan it goes to.
    pub key: u32,
}

impl LogEvent {
    /// The message as stored: escaped, ready to sit between the quotes of `"message":"…"`.
    pub fn escaped<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start as usize..(self.start + self.stored) as usize]
    }

    /// Where the event's frame `,{"timestamp":T,"message":"…"}` lies in the arena, if it was
    /// written framed (by `write_frame_open` and `FRAME_CLOSE` around the message): the
    /// frame's opening is as long as its timestamp's digits say.
    pub fn frame(&self) -> Option<Range<usize>> {
        let opening = FRAME_OPEN.len() + decimal_len(self.timestamp) + FRAME_MESSAGE.len();
        let start = (self.start as usize).checked_sub(opening)?;
        Some(start..self.start as usize + self.stored as usize + FRAME_CLOSE.len())
    }

    /// What the event counts for against `MAX_BATCH_BYTES`.
    pub fn cost(&self) -> usize {
        self.len as usize + EVENT_OVERHEAD_BYTES
    }
}

/// Sorts events by (group, stream) and then timestamp, keeping record order among equal
/// timestamps.
pub fn sort_events(events: &mut [LogEvent]) {
    events.sort_by_key(|e| (e.key, e.timestamp));
}

/// Cuts sorted events into batches, greedily: each batch is as long as the rules allow, and
/// holds one (group, stream) only.
/// Each event must already fit a batch on its own (`message::MAX_MESSAGE_BYTES`).
pub fn batches(events: &[LogEvent]) -> Batches<'_> {
    Batches { events, next: 0 }
}

/// Iterator over the index ranges of `batches`.
pub struct Batches<'a> {
    events: &'a [LogEvent],
    next: usize,
}

impl Iterator for Batches<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let start = self.next;
        let first = self.events.get(start)?;
        let mut bytes = 0usize;
        let mut end = start;
        for event in &self.events[start..] {
            let full = end - start == MAX_BATCH_EVENTS
                || bytes + event.cost() > MAX_BATCH_BYTES
                || event.timestamp - first.timestamp >= MAX_BATCH_SPAN_MS
                || event.key != first.key;
            if full && end > start {
                break;
            }
            bytes += event.cost();
            end += 1;
        }
        self.next = end;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(timestamp: i64, len: u32) -> LogEvent {
        LogEvent { timestamp, start: 0, stored: len, len, key: 0 }
    }

    #[test]
    fn limits_at_their_edges() {
        // exactly 1,048,576 bytes fits: 2 × (524,262 + 26)
        let fits = [ev(0, 524_262), ev(0, 524_262)];
        assert_eq!(batches(&fits).collect::<Vec<_>>(), vec![0..2]);
        let over = [ev(0, 524_262), ev(0, 524_263)];
        assert_eq!(batches(&over).collect::<Vec<_>>(), vec![0..1, 1..2]);
        let many = vec![ev(0, 1); 10_001];
        assert_eq!(batches(&many).collect::<Vec<_>>(), vec![0..10_000, 10_000..10_001]);
        let span = [ev(0, 1), ev(MAX_BATCH_SPAN_MS - 1, 1), ev(MAX_BATCH_SPAN_MS, 1)];
        assert_eq!(batches(&span).collect::<Vec<_>>(), vec![0..2, 2..3]);
        let streams = [ev(0, 1), LogEvent { key: 1, ..ev(0, 1) }, LogEvent { key: 1, ..ev(1, 1) }];
        assert_eq!(batches(&streams).collect::<Vec<_>>(), vec![0..1, 1..3]);
    }

    #[test]
    fn sort_is_stable() {
        let mut e = vec![
            LogEvent { timestamp: 5, start: 0, stored: 1, len: 1, key: 0 },
            LogEvent { timestamp: 1, start: 1, stored: 1, len: 1, key: 0 },
            LogEvent { timestamp: 5, start: 2, stored: 1, len: 1, key: 0 },
        ];
        sort_events(&mut e);
        assert_eq!(e.iter().map(|e| e.start).collect::<Vec<_>>(), vec![1, 0, 2]);
    }

    proptest! {
        #[test]
        fn batches_cover_everything_and_obey_every_rule(
            mut events in prop::collection::vec(
                (0i64..3 * MAX_BATCH_SPAN_MS, prop_oneof![0u32..200, 100_000u32..(1_048_550 + 1)], 0u32..3)
                    .prop_map(|(t, len, key)| LogEvent { key, ..ev(t, len) }),
                0..400),
            small_count in 0usize..3,
        ) {
            // add a run of tiny events to exercise the count limit
            events.extend(std::iter::repeat_n(ev(7, 0), small_count * 6_000));
            sort_events(&mut events);
            let cuts: Vec<_> = batches(&events).collect();
            let mut next = 0;
            for (i, r) in cuts.iter().enumerate() {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
                let b = &events[r.clone()];
                prop_assert!(b.len() <= MAX_BATCH_EVENTS);
                prop_assert!(b.iter().map(LogEvent::cost).sum::<usize>() <= MAX_BATCH_BYTES);
                prop_assert!(b.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
                prop_assert!(b[b.len() - 1].timestamp - b[0].timestamp < MAX_BATCH_SPAN_MS);
                prop_assert!(b.iter().all(|e| e.key == b[0].key));
                // greedy: the next event could not have joined this batch
                if let Some(after) = events.get(r.end) {
                    let bytes: usize = b.iter().map(LogEvent::cost).sum();
                    prop_assert!(b.len() == MAX_BATCH_EVENTS
                        || bytes + after.cost() > MAX_BATCH_BYTES
                        || after.timestamp - b[0].timestamp >= MAX_BATCH_SPAN_MS
                        || after.key != b[0].key, "batch {} not greedy", i);
                }
            }
            prop_assert_eq!(next, events.len());
        }
    }
}

/// Writes the opening of an event's frame, `,{"timestamp":T,"message":"`, right before its
/// escaped message; `FRAME_CLOSE` follows the message. `T` must be the timestamp the event is
/// sent with (`LogEvent::timestamp`): the frame is the request body's text for it.
pub fn write_frame_open(timestamp: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(FRAME_OPEN);
    push_i64(timestamp, out);
    out.extend_from_slice(FRAME_MESSAGE);
}

/// How many bytes `push_i64` writes for `n`.
fn decimal_len(n: i64) -> usize {
    let digits = n.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
    digits + usize::from(n < 0)
}

/// The start of every request body: `{"logGroupName":…,"logStreamName":…,"logEvents":[`.
pub fn write_body_head(group: &str, stream: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"logGroupName\":");
    push_escaped_quoted(group.as_bytes(), out);
    out.extend_from_slice(b",\"logStreamName\":");
    push_escaped_quoted(stream.as_bytes(), out);
    out.extend_from_slice(b",\"logEvents\":[");
}

/// The run of the arena holding `events` as the inside of the `logEvents` array: their frames
/// back to back and in order, without the first one's leading comma. `None` when they are not
/// one run: sorting reordered them, several streams' records interleaved in the chunk, or an
/// event is not stored framed.
pub fn framed_run(events: &[LogEvent]) -> Option<Range<usize>> {
    let (first, rest) = events.split_first()?;
    let first = first.frame()?;
    let mut end = first.end;
    for event in rest {
        let frame = event.frame()?;
        if frame.start != end {
            return None;
        }
        end = frame.end;
    }
    Some(first.start + 1..end)
}

/// A batch's request body in parts, with no copy of its events where it can: when their frames
/// are one run of the arena (`framed_run`: one stream, records already in time order — the
/// common case), writes the body's head into `out` and returns that run; the body is then
/// `out`, the run and `BODY_TAIL`. Otherwise writes the whole body into `out` (`request_body`)
/// and returns `None`. Both give the same bytes.
pub fn body_parts(
    group: &str,
    stream: &str,
    arena: &[u8],
    events: &[LogEvent],
    out: &mut Vec<u8>,
) -> Option<Range<usize>> {
    let Some(run) = framed_run(events) else {
        request_body(group, stream, arena, events, out);
        return None;
    };
    debug_assert!(events.iter().all(|e| e
        .frame()
        .is_some_and(|f| { arena[f.start..].starts_with(FRAME_OPEN) && arena[..f.end].ends_with(FRAME_CLOSE) })));
    out.clear();
    write_body_head(group, stream, out);
    Some(run)
}

/// The PutLogEvents request body for one batch, written whole from the arena:
/// `{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,"message":…},…]}`, each
/// message copied from where `LogEvent::escaped` says (frames are not needed). The body of a
/// batch whose events are not one run of the arena (`body_parts`).
pub fn request_body(group: &str, stream: &str, arena: &[u8], events: &[LogEvent], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(events.iter().map(|e| e.stored as usize + 40).sum::<usize>() + group.len() + stream.len() + 64);
    write_body_head(group, stream, out);
    // where the previous event's timestamp digits are: neighbours often share a millisecond
    let mut last: Option<(i64, Range<usize>)> = None;
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"timestamp\":");
        match &last {
            Some((t, digits)) if *t == e.timestamp => out.extend_from_within(digits.clone()),
            _ => {
                let start = out.len();
                push_i64(e.timestamp, out);
                last = Some((e.timestamp, start..out.len()));
            }
        }
        // the message was escaped when it was encoded: copied, not scanned again
        out.extend_from_slice(FRAME_MESSAGE);
        out.extend_from_slice(e.escaped(arena));
        out.extend_from_slice(FRAME_CLOSE);
    }
    out.extend_from_slice(BODY_TAIL);
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn the_body_is_the_json_the_api_expects() {
        // the two messages, as `Encoder::encode_escaped` stores them
        let arena = r#"{\"a\":\"q\\\"\"}plain\ttext é"#.as_bytes();
        let (a, b) = (
            LogEvent { timestamp: 5, start: 0, stored: 17, len: 11, key: 0 },
            LogEvent { timestamp: 5, start: 17, stored: 14, len: 13, key: 0 },
        );
        // equal neighbouring timestamps reuse the digits written before
        let events =
            [a, b, LogEvent { timestamp: 1_700_000_000_123, ..a }, LogEvent { timestamp: 1_700_000_000_123, ..b }];
        let mut out = Vec::new();
        request_body("g/1", "s:\"x", arena, &events, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"logGroupName": "g/1", "logStreamName": "s:\"x", "logEvents": [
                {"timestamp": 5, "message": "{\"a\":\"q\\\"\"}"},
                {"timestamp": 5, "message": "plain\ttext é"},
                {"timestamp": 1_700_000_000_123_i64, "message": "{\"a\":\"q\\\"\"}"},
                {"timestamp": 1_700_000_000_123_i64, "message": "plain\ttext é"},
            ]})
        );
    }
}

#[cfg(test)]
mod framing_tests {
    use super::*;
    use crate::core::json::push_escaped_quoted;
    use proptest::prelude::*;

    /// An arena as the plan writes it: each message escaped and framed, in record order.
    fn framed_arena(records: &[(i64, String, u32)]) -> (Vec<u8>, Vec<LogEvent>) {
        let (mut arena, mut events) = (Vec::new(), Vec::new());
        let mut quoted = Vec::new();
        for (timestamp, message, key) in records {
            write_frame_open(*timestamp, &mut arena);
            quoted.clear();
            push_escaped_quoted(message.as_bytes(), &mut quoted);
            let escaped = &quoted[1..quoted.len() - 1];
            let start = arena.len() as u32;
            arena.extend_from_slice(escaped);
            arena.extend_from_slice(FRAME_CLOSE);
            let (stored, len) = (escaped.len() as u32, message.len() as u32);
            events.push(LogEvent { timestamp: *timestamp, start, stored, len, key: *key });
        }
        (arena, events)
    }

    /// The body `body_parts` describes, put together as it is sent.
    fn assembled(group: &str, stream: &str, arena: &[u8], events: &[LogEvent]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        match body_parts(group, stream, arena, events, &mut out) {
            Some(run) => {
                out.extend_from_slice(&arena[run]);
                out.extend_from_slice(BODY_TAIL);
                (out, true)
            }
            None => (out, false),
        }
    }

    #[test]
    fn a_frame_is_found_from_its_event() {
        for t in [0, 7, 9, 10, 99, 100, 1_700_000_000_123, -1, -10, i64::MAX, i64::MIN] {
            let (arena, events) = framed_arena(&[(t, "m\"é".into(), 0)]);
            assert_eq!(events[0].frame(), Some(0..arena.len()), "{t}");
            let mut digits = Vec::new();
            push_i64(t, &mut digits);
            assert_eq!(decimal_len(t), digits.len(), "{t}");
        }
        // an event not stored framed has no frame before its message
        assert_eq!(LogEvent { timestamp: 5, start: 3, stored: 1, len: 1, key: 0 }.frame(), None);
    }

    #[test]
    fn a_batch_in_arena_order_is_sent_from_the_arena_and_any_other_is_copied() {
        let records: Vec<_> = (0..4).map(|i| (1_000 + i / 2, format!("m{i}\n"), 0)).collect();
        let (arena, events) = framed_arena(&records);
        let (zero_copy, taken) = assembled("g", "s", &arena, &events);
        assert!(taken);
        let mut old = Vec::new();
        request_body("g", "s", &arena, &events, &mut old);
        assert_eq!(zero_copy, old);
        // a run in the middle, and a batch with an event left out
        assert_eq!(
            framed_run(&events[1..3]),
            Some(events[1].frame().unwrap().start + 1..events[2].frame().unwrap().end)
        );
        assert_eq!(framed_run(&[events[0], events[2]]), None);
        assert_eq!(framed_run(&[events[1], events[0]]), None);
        assert_eq!(framed_run(&[]), None);
        assert!(!assembled("g", "s", &arena, &[events[1], events[0]]).1);
    }

    proptest! {
        /// Whatever the timestamps, streams and dropped events: every batch's body, sent from
        /// the arena or copied, is the byte-for-byte body `request_body` writes, and it parses
        /// as the JSON PutLogEvents expects. When nothing was reordered, interleaved or
        /// dropped, every batch goes without a copy.
        #[test]
        fn zero_copy_bodies_are_the_copied_bodies(
            records in prop::collection::vec((
                prop_oneof![0i64..3, 1_699_999_000_000i64..1_700_000_000_000, 0i64..3 * MAX_BATCH_SPAN_MS],
                "(.|\n|\"|\\\\){0,30}",
                0u32..3,
            ), 0..120),
            big in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            chronological in any::<bool>(),
            one_stream in any::<bool>(),
            drops in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut records = records;
            // a few long messages, so the byte limit cuts batches too
            for i in &big {
                if !records.is_empty() {
                    let r = i.index(records.len());
                    records[r].1 = "x".repeat(400_000);
                }
            }
            if chronological {
                records.sort_by_key(|r| r.0);
            }
            if one_stream {
                records.iter_mut().for_each(|r| r.2 = 0);
            }
            let (arena, mut events) = framed_arena(&records);
            let messages: std::collections::HashMap<u32, &str> =
                events.iter().zip(&records).map(|(e, r)| (e.start, r.1.as_str())).collect();
            let common = chronological && one_stream && drops.is_empty();
            for d in &drops {
                if !events.is_empty() {
                    events.remove(d.index(events.len()));
                }
            }
            sort_events(&mut events);
            let cuts: Vec<_> = batches(&events).collect();
            for r in cuts {
                let batch = &events[r];
                let stream = format!("s\"{}", batch[0].key);
                let (body, zero_copy) = assembled("g/1", &stream, &arena, batch);
                let mut old = Vec::new();
                request_body("g/1", &stream, &arena, batch, &mut old);
                prop_assert_eq!(&body, &old);
                prop_assert!(zero_copy || !common);
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                prop_assert_eq!(&v["logGroupName"], "g/1");
                prop_assert_eq!(&v["logStreamName"], stream.as_str());
                let sent = v["logEvents"].as_array().unwrap();
                prop_assert_eq!(sent.len(), batch.len());
                for (s, e) in sent.iter().zip(batch) {
                    prop_assert_eq!(s.as_object().unwrap().len(), 2);
                    prop_assert_eq!(s["timestamp"].as_i64(), Some(e.timestamp));
                    prop_assert_eq!(s["message"].as_str(), Some(messages[&e.start]));
                    prop_assert_eq!(messages[&e.start].len(), e.len as usize);
                }
            }
        }
    }
}
