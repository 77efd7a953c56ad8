//! Events → PutLogEvents batches that honour every documented rule: at most 1,048,576 bytes
//! counting each message's UTF-8 length + 26, at most 10,000 events, a time span under 24 hours,
//! and chronological order (a stable sort, so equal timestamps keep record order).

use std::ops::Range;

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// A batch's newest event must be less than 24 hours after its oldest.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// One CloudWatch event: a timestamp and its message, stored in a shared arena already escaped
/// as the content of a JSON string (`Encoder::encode_escaped`).
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

/// The PutLogEvents request body for one batch, written straight from the arena:
/// `{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,"message":…},…]}`.
/// Replaces the SDK's per-event `String`s and its own serialisation (see `delivery`).
pub fn request_body(group: &str, stream: &str, arena: &[u8], events: &[LogEvent], out: &mut Vec<u8>) {
    use crate::core::json::{push_escaped_quoted, push_i64};
    out.clear();
    out.reserve(events.iter().map(|e| e.stored as usize + 40).sum::<usize>() + group.len() + stream.len() + 64);
    out.extend_from_slice(b"{\"logGroupName\":");
    push_escaped_quoted(group.as_bytes(), out);
    out.extend_from_slice(b",\"logStreamName\":");
    push_escaped_quoted(stream.as_bytes(), out);
    out.extend_from_slice(b",\"logEvents\":[");
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
        out.extend_from_slice(b",\"message\":\"");
        out.extend_from_slice(e.escaped(arena));
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
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
