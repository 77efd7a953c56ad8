//! One flush buffer → the events to send, sorted and cut into batches, with a count of every
//! record that will not be sent and why. Pure: no I/O, no globals.

use crate::core::batch::{batches, sort_events, write_frame_open, LogEvent, FRAME_CLOSE};
use crate::core::chunk::{Chunk, Damage, Entry};
use crate::core::message::{Encoded, Encoder, MessageFormat};
use crate::core::naming::{NameRule, StreamKey};
use crate::core::role::{Denial, RoleChoice, RoleMap, RoleRouting};
use crate::core::template::{Unresolved, Vars};
use std::collections::HashMap;
use std::ops::Range;

/// How each record's log group and stream are named, and the role it is written with.
#[derive(Debug, Clone, Copy)]
pub struct Naming<'a> {
    pub group: &'a NameRule,
    pub stream: &'a NameRule,
    pub vars: &'a Vars<'a>,
    /// `role_arn_template` / `role_arn_map`; `None`: every record is written with the
    /// instance's own credentials.
    pub roles: Option<&'a RoleRouting>,
    /// The current `role_arn_map`, when the role is looked up in one.
    pub role_map: Option<&'a RoleMap>,
}

/// Why a record's chosen role was not used (it went to the instance's own credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleProblem {
    /// A variable had no value, or the map has no entry for the key.
    Unresolved,
    Denied(Denial),
}

/// Distinct role problems a plan keeps for the log line.
const ROLE_EXAMPLES: usize = 8;

/// What became of a record's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleFate {
    Used,
    Unresolved,
    Denied,
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
    /// All messages, back to back, each framed as the request body holds it
    /// (`LogEvent::frame`); events point into it.
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
    /// Events written with the instance's own credentials because their role could not be
    /// chosen (`role_unresolved`) or was refused (`role_denied`).
    pub role_unresolved: u64,
    pub role_denied: u64,
    /// The first few distinct (problem, variable / key / role) behind those counts.
    pub role_examples: Vec<(RoleProblem, String)>,
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
        self.role_unresolved = 0;
        self.role_denied = 0;
        self.role_examples.clear();
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
        let per_record = naming.group.per_record()
            || naming.stream.per_record()
            || naming.roles.is_some_and(RoleRouting::per_record);
        // names and roles that depend on the tag only are rendered once per chunk
        let per_chunk = if per_record { None } else { Some(self.key_for(tag, &[0x80], naming)) };
        let mut records = Chunk::new(chunk);
        // each body is read once: its message is written as its end is found
        // each message is written framed as the request body will hold it (`LogEvent::frame`),
        // so a batch whose events lie back to back is sent without copying them
        while let Some(entry) = records.next_with(|time, _metadata, reader| {
            let frame = self.arena.len();
            write_frame_open(time.millis(), &mut self.arena);
            let start = self.arena.len();
            match encoder.encode_escaped_from(reader, time.millis(), format, &mut self.arena) {
                Ok((encoded, body)) => Ok((time, frame, start, encoded, body)),
                Err(e) => {
                    self.arena.truncate(frame);
                    Err(e)
                }
            }
        }) {
            let (time, frame, start, encoded, body) = match entry {
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
                        let (key, names, role) = self.key_for(tag, body, naming);
                        if let Err(unresolved) = names {
                            self.fallbacks += 1;
                            self.note_fallback(unresolved, key);
                        }
                        self.count_role(role, 1);
                        key
                    } else {
                        0
                    };
                    self.mix(key as u64);
                    let stored = (self.arena.len() - start) as u32;
                    self.arena.extend_from_slice(FRAME_CLOSE);
                    // the timestamp the frame holds
                    let timestamp = time.millis();
                    self.events.push(LogEvent { timestamp, start: start as u32, stored, len: len as u32, key });
                }
                // nothing of a dropped record stays in the arena, so its neighbours' frames
                // still lie back to back
                Ok((Encoded::Empty, _)) => {
                    self.arena.truncate(frame);
                    self.dropped.empty += 1;
                }
                Ok((Encoded::MissingKey, _)) => {
                    self.arena.truncate(frame);
                    self.dropped.missing_key += 1;
                }
                Err(_) => {
                    self.arena.truncate(frame);
                    self.dropped.bad_body += 1;
                }
            }
        }
        if let Some((key, names, role)) = per_chunk {
            if !self.events.is_empty() {
                if let Err(unresolved) = names {
                    self.fallbacks += self.events.len() as u64;
                    self.note_fallback(unresolved, key);
                }
                self.count_role(role, self.events.len() as u64);
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

    /// The key of this record's (role, group, stream), added on first sight; whether a
    /// fallback name was used; what became of its role (a role not used is noted).
    fn key_for<'n>(
        &mut self,
        tag: &str,
        body: &[u8],
        naming: Naming<'n>,
    ) -> (u32, Result<(), Unresolved<'n>>, RoleFate) {
        let s = &mut self.scratch;
        let (role, fate) = match naming.roles {
            None => (None, RoleFate::Used),
            Some(routing) => match routing.choose(naming.role_map, tag, body, naming.vars, &mut s.role) {
                RoleChoice::Own => (None, RoleFate::Used),
                RoleChoice::Role(role) => (Some(role), RoleFate::Used),
                RoleChoice::Unresolved { what } => {
                    note_role(&mut self.role_examples, RoleProblem::Unresolved, what);
                    (None, RoleFate::Unresolved)
                }
                RoleChoice::Denied { role, why } => {
                    note_role(&mut self.role_examples, RoleProblem::Denied(why), role);
                    (None, RoleFate::Denied)
                }
            },
        };
        let group = naming.group.write(tag, body, naming.vars, &mut s.group);
        let stream = naming.stream.write(tag, body, naming.vars, &mut s.stream);
        s.joined.clear();
        s.joined.push_str(role.unwrap_or_default());
        s.joined.push('\0');
        s.joined.push_str(&s.group);
        s.joined.push('\0');
        s.joined.push_str(&s.stream);
        let key = match self.key_index.get(s.joined.as_str()) {
            Some(&key) => key,
            None => {
                let key = self.keys.len() as u32;
                let to = StreamKey { role: role.map(str::to_owned), group: s.group.clone(), stream: s.stream.clone() };
                self.keys.push(to);
                self.key_index.insert(s.joined.clone(), key);
                // the destination's text, not only its index, identifies the chunk: a retry
                // planned after the map changed is a different chunk
                let text = fnv(s.joined.as_bytes());
                self.mix(text);
                key
            }
        };
        (key, group.and(stream), fate)
    }

    fn count_role(&mut self, fate: RoleFate, events: u64) {
        match fate {
            RoleFate::Used => {}
            RoleFate::Unresolved => self.role_unresolved += events,
            RoleFate::Denied => self.role_denied += events,
        }
    }

    fn note_fallback(&mut self, unresolved: Unresolved<'_>, key: u32) {
        let known = self.fallback_examples.iter().any(|(v, k)| *v == unresolved.variable && *k == key);
        if !known && self.fallback_examples.len() < FALLBACK_EXAMPLES {
            self.fallback_examples.push((unresolved.variable.to_owned(), key));
        }
    }
}

/// Keeps the first few distinct role problems (allocating only for a new one).
fn note_role(examples: &mut Vec<(RoleProblem, String)>, problem: RoleProblem, value: &str) {
    let known = examples.iter().any(|(p, v)| *p == problem && v == value);
    if !known && examples.len() < ROLE_EXAMPLES {
        examples.push((problem, value.to_owned()));
    }
}

/// FNV-1a over `bytes`.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Reused name buffers, so naming allocates only for a (role, group, stream) not seen in the chunk.
#[derive(Debug, Default)]
struct NameScratch {
    role: String,
    group: String,
    stream: String,
    joined: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::batch::{body_parts, request_body, BODY_TAIL};
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
        Naming { group: &GROUP, stream: &STREAM, vars: &VARS, roles: None, role_map: None }
    }

    #[test]
    fn names_from_records_split_batches_and_count_fallbacks() {
        let group = NameRule::Fixed("g".into());
        let stream = NameRule::Template {
            template: Template::parse("$app.$TAG[1]", NameKind::Stream).unwrap().into(),
            fallback: Box::new(NameRule::Fixed("fallback".into())),
        };
        let naming = Naming { group: &group, stream: &stream, vars: &VARS, roles: None, role_map: None };
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
        assert_eq!(plan.keys[2], StreamKey { role: None, group: "g".into(), stream: "fallback".into() });
    }

    #[test]
    fn roles_split_batches_and_count_what_falls_back() {
        use crate::core::role::{AllowList, RoleSource};
        let template = Template::parse("arn:aws:iam::$acct:role/w", NameKind::Role).unwrap();
        let roles = RoleRouting {
            source: RoleSource::Template(template.into()),
            allowed: AllowList::parse("222222222222,333333333333").unwrap(),
            fallback: None,
        };
        let naming = Naming { group: &GROUP, stream: &STREAM, vars: &VARS, roles: Some(&roles), role_map: None };
        let mut chunk = Vec::new();
        for (i, acct) in ["222222222222", "333333333333", "444444444444", "", "222222222222", "x"].iter().enumerate() {
            let body =
                if acct.is_empty() { serde_json::json!({"n": i}) } else { serde_json::json!({"acct": acct, "n": i}) };
            chunk.extend(record(100, &body, true));
        }
        let mut plan = Plan::default();
        plan.build(&chunk, "t", naming, &MessageFormat::default(), &mut Encoder::new());
        let roles: Vec<Option<&str>> = plan.keys.iter().map(|k| k.role.as_deref()).collect();
        assert_eq!(roles, [Some("arn:aws:iam::222222222222:role/w"), Some("arn:aws:iam::333333333333:role/w"), None]);
        for r in &plan.batches {
            let key = plan.events[r.start].key;
            assert!(plan.events[r.clone()].iter().all(|e| e.key == key));
        }
        assert_eq!(plan.batches.len(), 3);
        assert_eq!((plan.role_unresolved, plan.role_denied), (1, 2));
        let problems: Vec<_> = plan.role_examples.iter().map(|(p, v)| format!("{p:?} {v}")).collect();
        assert_eq!(
            problems,
            [
                "Denied(NotAllowed) arn:aws:iam::444444444444:role/w",
                "Unresolved $acct",
                "Denied(NotARoleArn) arn:aws:iam::x:role/w"
            ]
        );
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

    /// The common case: one stream, records already in time order, some dropped between: every
    /// batch's events are one run of the arena, sent without a copy.
    #[test]
    fn chronological_records_of_one_stream_are_sent_from_the_arena() {
        let mut chunk = Vec::new();
        for i in 0..3_000u32 {
            let body = match i % 100 {
                7 => serde_json::json!({"log": ""}),
                8 => serde_json::json!({"other": i}),
                _ => serde_json::json!({"log": "x".repeat(900), "n": i}),
            };
            chunk.extend(record(1_700_000_000 + i / 10, &body, true));
        }
        let format = MessageFormat {
            log_key: Some(RecordPath::key("log")),
            missing_key: crate::core::message::MissingKey::Drop,
            ..Default::default()
        };
        let mut plan = Plan::default();
        plan.build(&chunk, "t", fixed(), &format, &mut Encoder::new());
        assert_eq!((plan.dropped.empty, plan.dropped.missing_key), (30, 30));
        assert_eq!(plan.batches.len(), 3);
        for r in &plan.batches {
            let events = &plan.events[r.clone()];
            let run = crate::core::batch::framed_run(events).unwrap();
            let (mut parts, mut whole) = (Vec::new(), Vec::new());
            assert_eq!(body_parts("g", "s", &plan.arena, events, &mut parts), Some(run.clone()));
            parts.extend_from_slice(&plan.arena[run]);
            parts.extend_from_slice(BODY_TAIL);
            request_body("g", "s", &plan.arena, events, &mut whole);
            assert_eq!(parts, whole);
        }
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
        /// Whatever accounts the records name: a batch holds one role, an allowed one or the
        /// instance's own, and every event is used, unresolved or denied exactly once (an empty
        /// value renders as nothing, as Fluent Bit writes it, so it makes an invalid ARN: denied).
        #[test]
        fn batches_never_mix_roles(accounts in prop::collection::vec(prop_oneof![
            Just(None), Just(Some("222222222222".to_string())), Just(Some("333333333333".to_string())),
            Just(Some("444444444444".to_string())), "[0-9:a-z/]{0,14}".prop_map(Some),
        ], 0..80)) {
            use crate::core::role::{parse_role_arn, AllowList, RoleSource};
            let template = Template::parse("arn:aws:iam::$acct:role/w", NameKind::Role).unwrap();
            let allowed = AllowList::parse("222222222222,333333333333").unwrap();
            let roles = RoleRouting { source: RoleSource::Template(template.into()), allowed: allowed.clone(), fallback: None };
            let naming = Naming { group: &GROUP, stream: &STREAM, vars: &VARS, roles: Some(&roles), role_map: None };
            let mut chunk = Vec::new();
            for (i, acct) in accounts.iter().enumerate() {
                let body = match acct {
                    Some(a) => serde_json::json!({"acct": a, "n": i}),
                    None => serde_json::json!({"n": i}),
                };
                chunk.extend(record(100 + (i as u32 % 7), &body, true));
            }
            let mut plan = Plan::default();
            plan.build(&chunk, "t", naming, &MessageFormat::default(), &mut Encoder::new());
            let mut used = 0u64;
            for r in &plan.batches {
                let key = plan.events[r.start].key;
                prop_assert!(plan.events[r.clone()].iter().all(|e| e.key == key));
                if let Some(role) = &plan.keys[key as usize].role {
                    prop_assert!(allowed.allows(&parse_role_arn(role).unwrap()));
                    used += r.len() as u64;
                }
            }
            let own = plan.events.len() as u64 - used;
            prop_assert_eq!(own, plan.role_unresolved + plan.role_denied);
            prop_assert_eq!(plan.role_unresolved, accounts.iter().filter(|a| a.is_none()).count() as u64);
        }

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
            // every event is stored framed with the timestamp it is sent with, so a batch sent
            // from the arena is the body written whole
            for r in &plan.batches {
                let events = &plan.events[r.clone()];
                let (mut parts, mut whole) = (Vec::new(), Vec::new());
                if let Some(run) = body_parts("g", "s", &plan.arena, events, &mut parts) {
                    parts.extend_from_slice(&plan.arena[run]);
                    parts.extend_from_slice(BODY_TAIL);
                }
                request_body("g", "s", &plan.arena, events, &mut whole);
                prop_assert_eq!(parts, whole);
            }
            for e in &plan.events {
                let frame = e.frame().unwrap();
                let mut open = Vec::new();
                write_frame_open(e.timestamp, &mut open);
                prop_assert!(plan.arena[frame.clone()].starts_with(&open));
                prop_assert!(plan.arena[..frame.end].ends_with(FRAME_CLOSE));
            }
        }
    }
}
