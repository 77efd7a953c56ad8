//! One flush buffer → the events to send, sorted and cut into batches, with a count of every
//! record that will not be sent and why. Pure: no I/O, no globals.

use crate::core::batch::{batches, sort_events, LogEvent};
use crate::core::chunk::{Chunk, Damage, Entry};
use crate::core::message::{Encoded, Encoder, MessageFormat};
use crate::core::naming::{NameRule, StreamKey};
use crate::core::template::{Unresolved, Vars};
use std::collections::HashMap;
use std::ops::Range;

/// How each record's log group and stream are named.
#[derive(Debug, Clone, Copy)]
pub struct Naming<'a> {
    pub group: &'a NameRule,
    pub stream: &'a NameRule,
    pub vars: &'a Vars<'a>,
}

/// Distinct (variable, fallback name) pairs a plan keeps for the log line (once per chunk).
const FALLBACK_EXAMPLES: usize = 8;

/// Records that were not turned into events, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Intact msgpack, wrong shape (not `[time, body]`, bad time, body not a map).
    pub bad_record: u64,
    /// A body map that could not be transcoded.
    pub bad_body: u64,
    /// Empty body, or an empty `log_key` value.
    pub empty: u64,
    /// `log_key` set and absent from the record.
    pub missing_key: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.bad_record + self.bad_body + self.empty + self.missing_key
    }
}

/// What one chunk becomes.
#[derive(Debug, Default)]
pub struct Plan {
    /// All messages, back to back; events point into it.
    pub arena: Vec<u8>,
    /// Sorted by timestamp (stable).
    pub events: Vec<LogEvent>,
    /// Index ranges of `events`, one per PutLogEvents call; each holds one key.
    pub batches: Vec<Range<usize>>,
    /// Where events go: `LogEvent::key` indexes this.
    pub keys: Vec<StreamKey>,
    /// Events named by a fallback because a template variable could not be resolved.
    pub fallbacks: u64,
    /// The first few distinct (variable, key of the fallback name) pairs behind `fallbacks`.
    pub fallback_examples: Vec<(String, u32)>,
    key_index: HashMap<String, u32>,
    scratch: NameScratch,
    pub records: u64,
    pub group_markers: u64,
    pub truncated: u64,
    pub dropped: Dropped,
    /// Set when the buffer stops being msgpack; records before it are in the plan.
    pub damage: Option<Damage>,
    /// A hash of what the arena does not hold: every record's full time (nanoseconds) and each
    /// event's destination. With the arena it identifies the chunk (`ChunkId::of_plan`).
    pub identity: u64,
}

impl Plan {
    /// Empties the plan, keeping its buffers for the next chunk.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.events.clear();
        self.batches.clear();
        self.keys.clear();
        self.key_index.clear();
        self.fallbacks = 0;
        self.fallback_examples.clear();
        self.records = 0;
        self.group_markers = 0;
        self.truncated = 0;
        self.dropped = Dropped::default();
        self.damage = None;
        self.identity = 0;
    }

    /// Fills the plan from one flush buffer with this tag.
    pub fn build(
        &mut self,
        chunk: &[u8],
        tag: &str,
        naming: Naming<'_>,
        format: &MessageFormat,
        encoder: &mut Encoder,
    ) {
        self.clear();
        let per_record = naming.group.per_record() || naming.stream.per_record();
        // names that depend on the tag only are rendered once per chunk
        let chunk_fallback = if per_record { None } else { self.key_for(tag, &[0x80], naming).err() };
        let mut records = Chunk::new(chunk);
        // each body is read once: its message is written as its end is found
        while let Some(entry) = records.next_with(|time, _metadata, reader| {
            let start = self.arena.len();
            let (encoded, body) = encoder.encode_escaped_from(reader, time.millis(), format, &mut self.arena)?;
            Ok((time, start, encoded, body))
        }) {
            let (time, start, encoded, body) = match entry {
                Ok(Entry::Record(record)) => record,
                Ok(Entry::GroupMarker) => {
                    self.group_markers += 1;
                    continue;
                }
                Ok(Entry::Skipped(_)) => {
                    self.records += 1;
                    self.dropped.bad_record += 1;
                    continue;
                }
                Err(damage) => {
                    self.damage = Some(damage);
                    break;
                }
            };
            self.records += 1;
            self.mix(time.secs ^ (time.nanos as u64) << 34);
            match encoded {
                Ok((Encoded::Message { truncated }, len)) => {
                    self.truncated += truncated as u64;
                    let key = if per_record {
                        match self.key_for(tag, body, naming) {
                            Ok(key) => key,
                            Err((key, unresolved)) => {
                                self.fallbacks += 1;
                                self.note_fallback(unresolved, key);
                                key
                            }
                        }
                    } else {
                        0
                    };
                    self.mix(key as u64);
                    let stored = (self.arena.len() - start) as u32;
                    let timestamp = time.millis();
                    self.events.push(LogEvent { timestamp, start: start as u32, stored, len: len as u32, key });
                }
                Ok((Encoded::Empty, _)) => self.dropped.empty += 1,
                Ok((Encoded::MissingKey, _)) => self.dropped.missing_key += 1,
                Err(_) => self.dropped.bad_body += 1,
            }
        }
        if let Some((key, unresolved)) = chunk_fallback {
            if !self.events.is_empty() {
                self.fallbacks += self.events.len() as u64;
                self.note_fallback(unresolved, key);
            }
        }
        sort_events(&mut self.events);
        self.batches.extend(batches(&self.events));
    }

    /// Where batch `i` goes.
    pub fn key_of(&self, batch: usize) -> Option<&StreamKey> {
        let first = self.events.get(self.batches.get(batch)?.start)?;
        self.keys.get(first.key as usize)
    }

    fn mix(&mut self, word: u64) {
        self.identity = (self.identity.rotate_left(23) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// The key of this record's (group, stream), added on first sight. `Err` carries the key
    /// too: a fallback name was used.
    fn key_for<'n>(&mut self, tag: &str, body: &[u8], naming: Naming<'n>) -> Result<u32, (u32, Unresolved<'n>)> {
        let s = &mut self.scratch;
        let group = naming.group.write(tag, body, naming.vars, &mut s.group);
        let stream = naming.stream.write(tag, body, naming.vars, &mut s.stream);
        s.joined.clear();
        s.joined.push_str(&s.group);
        s.joined.push('\0');
        s.joined.push_str(&s.stream);
        let key = match self.key_index.get(s.joined.as_str()) {
            Some(&key) => key,
            None => {
                let key = self.keys.len() as u32;
                self.keys.push(StreamKey { group: s.group.clone(), stream: s.stream.clone() });
                self.key_index.insert(s.joined.clone(), key);
                key
            }
        };
        match group.and(stream) {
            Ok(()) => Ok(key),
            Err(unresolved) => Err((key, unresolved)),
        }
    }

    fn note_fallback(&mut self, unresolved: Unresolved<'_>, key: u32) {
        let known = self.fallback_examples.iter().any(|(v, k)| *v == unresolved.variable && *k == key);
        if !known && self.fallback_examples.len() < FALLBACK_EXAMPLES {
            self.fallback_examples.push((unresolved.variable.to_owned(), key));
        }
    }
}

/// Reused name buffers, so naming allocates only for a (group, stream) not seen in the chunk.
#[derive(Debug, Default)]
struct NameScratch {
    group: String,
    stream: String,
    joined: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::MAX_MESSAGE_BYTES;
    use crate::core::names::NameKind;
    use crate::core::record_path::RecordPath;
    use crate::core::template::Template;
    use proptest::prelude::*;

    static GROUP: NameRule = NameRule::Fixed(String::new());
    static STREAM: NameRule = NameRule::TagPrefix(String::new());
    static VARS: Vars<'static> = Vars { uuid: "u", ecs: None };

    /// The message an event stands for (its stored form is escaped for the request body).
    fn message(e: &LogEvent, arena: &[u8]) -> String {
        let quoted = [b"\"", e.escaped(arena), b"\""].concat();
        serde_json::from_slice(&quoted).unwrap()
    }

    fn fixed() -> Naming<'static> {
        Naming { group: &GROUP, stream: &STREAM, vars: &VARS }
    }

    #[test]
    fn names_from_records_split_batches_and_count_fallbacks() {
        let group = NameRule::Fixed("g".into());
        let stream = NameRule::Template {
            template: Template::parse("$app.$TAG[1]", NameKind::Stream).unwrap().into(),
            fallback: Box::new(NameRule::Fixed("fallback".into())),
        };
        let naming = Naming { group: &group, stream: &stream, vars: &VARS };
        let mut chunk = Vec::new();
        for (i, app) in ["web", "db", "web", "", "web"].iter().enumerate() {
            let body =
                if app.is_empty() { serde_json::json!({"n": i}) } else { serde_json::json!({"app": app, "n": i}) };
            chunk.extend(record(100 - i as u32, &body, true));
        }
        let mut plan = Plan::default();
        plan.build(&chunk, "k8s.prod", naming, &MessageFormat::default(), &mut Encoder::new());
        let names: Vec<&str> = plan.keys.iter().map(|k| k.stream.as_str()).collect();
        assert_eq!(names, ["web.prod", "db.prod", "fallback"]);
        assert_eq!(plan.batches.len(), 3);
        for r in &plan.batches {
            let key = plan.events[r.start].key;
            assert!(plan.events[r.clone()].iter().all(|e| e.key == key));
            assert!(plan.events[r.clone()].windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        }
        assert_eq!(plan.fallbacks, 1);
        assert_eq!(plan.fallback_examples, vec![("$app".to_string(), 2)]);
        assert_eq!(plan.keys[2], StreamKey { group: "g".into(), stream: "fallback".into() });
    }

    fn record(secs: u32, body: &serde_json::Value, v2: bool) -> Vec<u8> {
        let mut out = vec![0x92];
        if v2 {
            out.push(0x92);
        }
        out.extend([0xd7, 0x00]);
        out.extend(secs.to_be_bytes());
        out.extend(0u32.to_be_bytes());
        if v2 {
            out.push(0x80);
        }
        out.extend(rmp_serde::to_vec(body).unwrap());
        out
    }

    #[test]
    fn mixed_forms_markers_and_drops_are_all_accounted() {
        let mut chunk = Vec::new();
        chunk.extend(record(200, &serde_json::json!({"log": "b"}), true));
        chunk.extend([0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0x80]);
        chunk.extend(record(100, &serde_json::json!({"log": "a"}), false));
        chunk.extend(record(100, &serde_json::json!({}), false));
        chunk.extend(record(100, &serde_json::json!({"other": 1}), true));
        let mut plan = Plan::default();
        let format = MessageFormat { log_key: Some(RecordPath::key("log")), ..Default::default() };
        plan.build(&chunk, "t", fixed(), &format, &mut Encoder::new());
        assert_eq!(plan.records, 4);
        assert_eq!(plan.group_markers, 1);
        assert_eq!(plan.dropped, Dropped { empty: 0, missing_key: 2, ..Default::default() });
        let msgs: Vec<_> = plan.events.iter().map(|e| (e.timestamp, message(e, &plan.arena))).collect();
        assert_eq!(msgs, vec![(100_000, "a".to_string()), (200_000, "b".to_string())]);
        assert_eq!(plan.batches, vec![0..2]);
    }

    #[test]
    fn damage_keeps_what_came_before() {
        let mut chunk = record(1, &serde_json::json!({"a": 1}), true);
        let second = record(2, &serde_json::json!({"a": 2}), true);
        chunk.extend(&second[..second.len() - 1]);
        let mut plan = Plan::default();
        plan.build(&chunk, "t", fixed(), &MessageFormat::default(), &mut Encoder::new());
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.damage.map(|d| d.offset), Some(second.len()));
    }

    proptest! {
        #[test]
        fn every_record_is_an_event_or_a_counted_drop(
            bodies in prop::collection::vec((any::<u32>(), prop::collection::vec(("[a-z]{0,3}", prop_oneof![
                Just(serde_json::Value::Null),
                any::<i64>().prop_map(serde_json::Value::from),
                ".{0,40}".prop_map(serde_json::Value::from),
            ]), 0..4), any::<bool>()), 0..60),
            cut in any::<prop::sample::Index>(),
            damage in any::<bool>(),
        ) {
            let mut chunk = Vec::new();
            for (secs, fields, v2) in &bodies {
                let map: serde_json::Map<String, serde_json::Value> = fields.iter().cloned().collect();
                chunk.extend(record(*secs, &serde_json::Value::Object(map), *v2));
            }
            if damage && !chunk.is_empty() {
                chunk.truncate(cut.index(chunk.len()));
            }
            let mut plan = Plan::default();
            plan.build(&chunk, "t", fixed(), &MessageFormat::default(), &mut Encoder::new());
            prop_assert_eq!(plan.records, plan.events.len() as u64 + plan.dropped.total());
            prop_assert!(plan.records <= bodies.len() as u64);
            if !damage {
                prop_assert!(plan.damage.is_none());
                prop_assert_eq!(plan.records, bodies.len() as u64);
            }
            prop_assert!(plan.events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
            for e in &plan.events {
                prop_assert!(e.len as usize <= MAX_MESSAGE_BYTES && e.len > 0);
                let text = message(e, &plan.arena);
                prop_assert_eq!(text.len(), e.len as usize);
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                prop_assert!(v.is_object());
            }
            let covered: usize = plan.batches.iter().map(|r| r.len()).sum();
            prop_assert_eq!(covered, plan.events.len());
        }
    }
}
