//! `log_group_name` / `log_stream_name` with `$(...)` variables, read exactly as the Go plugin
//! (`amazon-cloudwatch-logs-for-fluent-bit`, `helpers.go` with `fasttemplate`) reads them, so
//! a Go user's block sends every record where it went before:
//!
//! - a variable is `$(` up to the first `)`; any other `$` is text;
//! - `tag` is the tag; `tag[` + anything reads the ONE character after `[` as the index (not a
//!   digit → 0) into the tag split into at most 10 parts (the 10th keeps its dots);
//! - `uuid`, `ecs_cluster`, `ecs_task_arn`, `ecs_task_id` (exactly); anything else is a record
//!   key up to the first `[`: a string is written whole (what follows is ignored), a map is
//!   walked by the rest, in which each `['k']` is a key and all other text is written as text;
//!   a key naming a string writes it and stays in the same map, one naming a map descends;
//! - empty strings and maps write nothing; numbers, booleans, nil, arrays and missing keys
//!   have no value: the whole name then falls back;
//! - every byte written, text or value, goes through Go's sanitiser: in a group each byte
//!   outside `A-Za-z0-9_-./` becomes `.` (so `#` too, and each byte of `é`), in a stream `:` and
//!   `*` do; names are cut to 512 bytes (a stream on a character boundary, where Go would cut a
//!   character CloudWatch then refuses).
//!
//! Our extension: `$(var:-default)` writes `default` where `var` has no value.

use std::fmt;
use std::ops::Range;

use crate::core::msgpack::{MsgpackError, Reader, Token};
use crate::core::names::{NameKind, MAX_NAME_BYTES};
use crate::core::template::{Unresolved, Vars};

/// Go splits the tag into at most this many parts.
const GO_TAG_PARTS: usize = 10;

/// A `log_group_name` / `log_stream_name` read as the Go plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTemplate {
    text: String,
    kind: NameKind,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A range of `text`, written through the sanitiser.
    Text(Range<usize>),
    Var(Variable),
}

/// One `$(...)`: how Go reads it, our `:-default` (a range of `text`), and where it is written
/// (the whole `$(...)`, for `Unresolved`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    read: GoVar,
    default: Option<Range<usize>>,
    span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GoVar {
    /// The tag, or one of its (at most 10) parts.
    Tag { part: Option<usize> },
    /// A value of this plugin instance.
    Instance(InstanceValue),
    /// `key` is the record key; `walk` is what follows it, used when its value is a map.
    Record { key: Range<usize>, walk: Vec<Step> },
}

/// Values that do not depend on the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceValue {
    Uuid,
    EcsCluster,
    EcsTaskArn,
    EcsTaskId,
}

/// One piece of the text after a record key (Go's `parseKeysTemplate`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `['k']`: the key `k` in the current map.
    Key(Range<usize>),
    /// Anything else, written as text.
    Text(Range<usize>),
}

impl GoTemplate {
    /// Reads `text` as the Go plugin does; never fails (Go accepts every text that has a `)`
    /// after each `$(`; an unclosed `$(` here is text, as the C plugin would take it). Returns
    /// the lines saying where the reading is lenient (text sanitised, variables that do not
    /// mean what they look like), for the startup warnings.
    pub fn parse(text: &str, kind: NameKind) -> (GoTemplate, Vec<String>) {
        let mut parts = Vec::new();
        let mut readings = Vec::new();
        let mut pos = 0;
        while let Some(at) = text[pos..].find("$(").map(|i| pos + i) {
            let Some(close) = text[at + 2..].find(')').map(|i| at + 2 + i) else {
                readings.push(format!("'$(' at byte {at} has no ')': it is text"));
                break;
            };
            if at > pos {
                parts.push(Part::Text(pos..at));
            }
            let inner = at + 2..close;
            let (var_range, default) = match text[inner.clone()].find(":-") {
                Some(i) => (inner.start..inner.start + i, Some(inner.start + i + 2..inner.end)),
                None => (inner.clone(), None),
            };
            let var = read_variable(text, var_range.clone());
            if let Some(reading) = describe_lenient(text, &var, var_range) {
                readings.push(format!("'{}' {reading}", &text[at..=close]));
            }
            parts.push(Part::Var(Variable { read: var, default, span: at..close + 1 }));
            pos = close + 1;
        }
        if pos < text.len() {
            parts.push(Part::Text(pos..text.len()));
        }
        let template = GoTemplate { text: text.to_owned(), kind, parts };
        readings.extend(template.describe_text());
        (template, readings)
    }

    fn variables(&self) -> impl Iterator<Item = &GoVar> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(&v.read),
            Part::Text(_) => None,
        })
    }

    /// No variables: the name is the text.
    pub fn is_static(&self) -> bool {
        self.variables().next().is_none()
    }

    pub fn uses_record(&self) -> bool {
        self.variables().any(|v| matches!(v, GoVar::Record { .. }))
    }

    pub fn uses_ecs(&self) -> bool {
        self.variables().any(|v| matches!(v, GoVar::Instance(i) if *i != InstanceValue::Uuid))
    }

    pub fn uses_uuid(&self) -> bool {
        self.variables().any(|v| *v == GoVar::Instance(InstanceValue::Uuid))
    }

    /// Clears `out` and writes the name for one record, as the Go plugin would; `Err` names the
    /// variable without a value (or the whole template when the name came out empty), and
    /// leaves `out` empty. No allocation once `out` has room for a name.
    pub fn render(&self, tag: &str, body: &[u8], vars: &Vars<'_>, out: &mut String) -> Result<(), Unresolved<'_>> {
        out.clear();
        let mut name = GoName { out, kind: self.kind, full: false };
        let missing = self.parts.iter().find_map(|part| match part {
            Part::Text(range) => {
                name.write(self.text[range.clone()].as_bytes());
                None
            }
            Part::Var(variable) => (!self.write_or_default(variable, tag, body, vars, &mut name)).then_some(variable),
        });
        if let Some(variable) = missing {
            name.out.clear();
            return Err(Unresolved { variable: &self.text[variable.span.clone()] });
        }
        if name.out.is_empty() {
            return Err(Unresolved { variable: &self.text });
        }
        Ok(())
    }

    /// Writes a variable's value, else its default; false when it has neither.
    fn write_or_default(
        &self,
        variable: &Variable,
        tag: &str,
        body: &[u8],
        vars: &Vars<'_>,
        name: &mut GoName<'_>,
    ) -> bool {
        let (len, full) = (name.out.len(), name.full);
        if self.write_variable(&variable.read, tag, body, vars, name) {
            return true;
        }
        // a map walk may have written part of the value before a key was missing
        name.out.truncate(len);
        name.full = full;
        let Some(default) = &variable.default else {
            return false;
        };
        name.write(self.text[default.clone()].as_bytes());
        true
    }

    /// Writes a variable's value; false when it has none.
    fn write_variable(&self, var: &GoVar, tag: &str, body: &[u8], vars: &Vars<'_>, name: &mut GoName<'_>) -> bool {
        let present = |value: &str, name: &mut GoName<'_>| {
            name.write(value.as_bytes());
            !value.is_empty()
        };
        match var {
            GoVar::Tag { part: None } => name.write(tag.as_bytes()),
            GoVar::Tag { part: Some(n) } => match tag.splitn(GO_TAG_PARTS, '.').nth(*n) {
                Some(part) => name.write(part.as_bytes()),
                None => return false,
            },
            GoVar::Instance(InstanceValue::Uuid) => name.write(vars.uuid.as_bytes()),
            GoVar::Instance(InstanceValue::EcsCluster) => return vars.ecs.is_some_and(|e| present(&e.cluster, name)),
            GoVar::Instance(InstanceValue::EcsTaskArn) => return vars.ecs.is_some_and(|e| present(&e.task_arn, name)),
            GoVar::Instance(InstanceValue::EcsTaskId) => return vars.ecs.is_some_and(|e| present(&e.task_id, name)),
            // a damaged body is a record without the value: the name falls back
            GoVar::Record { key, walk } => {
                return self.write_record_value(&self.text[key.clone()], walk, body, name).unwrap_or(false)
            }
        }
        true
    }

    fn write_record_value(
        &self,
        key: &str,
        walk: &[Step],
        body: &[u8],
        name: &mut GoName<'_>,
    ) -> Result<bool, MsgpackError> {
        let Some(value) = last_value(body, key)? else {
            return Ok(false);
        };
        let mut map = match Reader::new(value).next_token()? {
            Token::Str(s) | Token::Bin(s) => {
                name.write(s);
                return Ok(true);
            }
            Token::Map(_) => value,
            _ => return Ok(false),
        };
        for step in walk {
            match step {
                Step::Text(range) => name.write(self.text[range.clone()].as_bytes()),
                Step::Key(range) => {
                    let Some(value) = last_value(map, &self.text[range.clone()])? else {
                        return Ok(false);
                    };
                    match Reader::new(value).next_token()? {
                        Token::Str(s) | Token::Bin(s) => name.write(s),
                        Token::Map(_) => map = value,
                        _ => return Ok(false),
                    }
                }
            }
        }
        Ok(true)
    }

    /// The line about literal text the sanitiser changes, or a `$` that is text.
    fn describe_text(&self) -> Option<String> {
        let mut changed = Vec::new();
        let mut dollar = false;
        let mut texts: Vec<&Range<usize>> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(range) => texts.push(range),
                Part::Var(Variable { default: Some(range), .. }) => texts.push(range),
                Part::Var(_) => {}
            }
        }
        for range in texts {
            let text = &self.text[range.clone()];
            dollar |= text.contains('$');
            let mut sanitised = String::new();
            GoName { out: &mut sanitised, kind: self.kind, full: false }.write(text.as_bytes());
            if sanitised != text {
                changed.push(format!("'{text}' is written '{sanitised}'"));
            }
        }
        let mut lines = Vec::new();
        if !changed.is_empty() {
            lines.push(format!("text as the Go plugin writes it: {}", changed.join(", ")));
        }
        if dollar {
            lines.push(
                "a '$' not followed by '(' is text, as in both peer plugins (Fluent Bit's record accessor, $TAG or \
                 $key, is for log_group_template / log_stream_template)"
                    .to_owned(),
            );
        }
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

impl fmt::Display for GoTemplate {
    /// The original text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Go's reading of the text between `$(` and `)` (before any `:-`).
fn read_variable(text: &str, range: Range<usize>) -> GoVar {
    let inner = &text[range.clone()];
    let instance = match inner {
        "uuid" => Some(InstanceValue::Uuid),
        "ecs_cluster" => Some(InstanceValue::EcsCluster),
        "ecs_task_arn" => Some(InstanceValue::EcsTaskArn),
        "ecs_task_id" => Some(InstanceValue::EcsTaskId),
        _ => None,
    };
    if let Some(value) = instance {
        return GoVar::Instance(value);
    }
    let head_len = inner.find('[').unwrap_or(inner.len());
    if &inner[..head_len] == "tag" {
        // Go: `tag` and `tag[` are the whole tag; longer, byte 4 is the index, 0 unless a digit
        let part = inner.as_bytes().get(4).map(|b| if b.is_ascii_digit() { usize::from(b - b'0') } else { 0 });
        return GoVar::Tag { part };
    }
    let key = range.start..range.start + head_len;
    GoVar::Record { key, walk: read_walk(text, range.start + head_len..range.end) }
}

/// Go's `fasttemplate.ExecuteFunc(keys, "['", "']")`: each `['k']` a key, the rest text, and a
/// `['` without `']` text to the end.
fn read_walk(text: &str, range: Range<usize>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut pos = range.start;
    while let Some(open) = text[pos..range.end].find("['").map(|i| pos + i) {
        if open > pos {
            steps.push(Step::Text(pos..open));
        }
        let Some(close) = text[open + 2..range.end].find("']").map(|i| open + 2 + i) else {
            steps.push(Step::Text(open..range.end));
            return steps;
        };
        steps.push(Step::Key(open + 2..close));
        pos = close + 2;
    }
    if pos < range.end {
        steps.push(Step::Text(pos..range.end));
    }
    steps
}

/// How a variable reads when it does not mean what it looks like; `None` for the plain forms
/// (`tag`, `tag[0]`…`tag[9]`, `uuid`, the ECS ones, `key`, `key['a']['b']`).
fn describe_lenient(text: &str, var: &GoVar, range: Range<usize>) -> Option<String> {
    let inner = &text[range];
    match var {
        GoVar::Tag { part: None } if inner != "tag" => Some("is the whole tag".to_owned()),
        GoVar::Tag { part: Some(n) }
            if !(inner.len() == 6 && inner.as_bytes()[4].is_ascii_digit() && inner.ends_with(']')) =>
        {
            Some(format!("is tag part {n} (the Go plugin reads one digit)"))
        }
        GoVar::Record { key, walk } => {
            let key = &text[key.clone()];
            let odd_key = key.is_empty() || key.contains(|c: char| c.is_whitespace() || "()'\"$]".contains(c));
            let texts: Vec<&str> = walk
                .iter()
                .filter_map(|s| match s {
                    Step::Text(r) => Some(&text[r.clone()]),
                    Step::Key(_) => None,
                })
                .collect();
            let ecs = key.starts_with("ecs_") && walk.is_empty();
            if !odd_key && texts.is_empty() && !ecs {
                return None;
            }
            let mut reading = format!("is the record key '{key}'");
            if !texts.is_empty() {
                reading.push_str(&format!(" then, inside a map, the text '{}'", texts.concat()));
            }
            if ecs {
                reading.push_str(" (the ECS variables are ecs_cluster, ecs_task_arn and ecs_task_id)");
            }
            Some(reading)
        }
        _ => None,
    }
}

/// The raw value of `key` in the msgpack map `map`; if the key repeats the last wins, as when
/// Go decodes the record into a map. Not a map, or no such key: `None`.
fn last_value<'a>(map: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, MsgpackError> {
    let mut reader = Reader::new(map);
    let Token::Map(entries) = reader.next_token()? else {
        return Ok(None);
    };
    let mut found = None;
    for _ in 0..entries {
        let matches = matches!(reader.next_token()?, Token::Str(k) | Token::Bin(k) if k == key.as_bytes());
        let value = reader.raw_value()?;
        if matches {
            found = Some(value);
        }
    }
    Ok(found)
}

/// The name being written, through Go's sanitiser, stopping at 512 bytes.
struct GoName<'o> {
    out: &'o mut String,
    kind: NameKind,
    /// Something did not fit: nothing more is written.
    full: bool,
}

impl GoName<'_> {
    fn write(&mut self, bytes: &[u8]) {
        match self.kind {
            // ASCII out, one `.` per byte Go replaces
            NameKind::Group => {
                for &b in bytes {
                    if self.full || self.out.len() == MAX_NAME_BYTES {
                        self.full = true;
                        return;
                    }
                    self.out.push(if NameKind::go_group_keeps(b) { char::from(b) } else { '.' });
                }
            }
            // Go changes only `:` and `*`; bytes that are not UTF-8 become U+FFFD, which
            // CloudWatch takes where it would refuse the bytes
            NameKind::Stream | NameKind::Role => {
                for chunk in bytes.utf8_chunks() {
                    let invalid = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
                    for c in chunk.valid().chars().chain(invalid) {
                        let c = self.kind.sanitise(c);
                        if self.full || self.out.len() + c.len_utf8() > MAX_NAME_BYTES {
                            self.full = true;
                            return;
                        }
                        self.out.push(c);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::template::EcsMetadata;
    use serde_json::{json, Value};

    fn render(text: &str, kind: NameKind, tag: &str, body: &Value) -> Result<String, String> {
        let (t, _) = GoTemplate::parse(text, kind);
        let meta = EcsMetadata { cluster: "cluster".into(), task_arn: "taskARN".into(), task_id: "taskID".into() };
        let vars = Vars { uuid: "123", ecs: Some(&meta) };
        let mut out = String::new();
        let body = rmp_serde::to_vec(body).unwrap();
        t.render(tag, &body, &vars, &mut out).map(|()| out).map_err(|u| u.variable.to_owned())
    }

    fn group(text: &str, body: &Value) -> Result<String, String> {
        render(text, NameKind::Group, "syslog.0", body)
    }

    fn stream(text: &str, body: &Value) -> Result<String, String> {
        render(text, NameKind::Stream, "syslog.0", body)
    }

    fn readings(text: &str, kind: NameKind) -> Vec<String> {
        GoTemplate::parse(text, kind).1
    }

    #[test]
    fn text_is_sanitised_as_go_does() {
        assert_eq!(group("go21 group", &json!({})).unwrap(), "go21.group");
        assert_eq!(stream("go22:stream", &json!({})).unwrap(), "go22.stream");
        assert_eq!(group("app#1/$(tag)", &json!({})).unwrap(), "app.1/syslog.0");
        assert_eq!(group("é$(tag)", &json!({})).unwrap(), "..syslog.0");
        assert_eq!(stream("é $TAG*", &json!({})).unwrap(), "é $TAG.");
        assert_eq!(group("$TAG-$(tag)", &json!({})).unwrap(), ".TAG-syslog.0");
        assert_eq!(stream("a$(tag", &json!({})).unwrap(), "a$(tag");
    }

    #[test]
    fn values_as_go_renders_them() {
        let body = json!({"s": "x y", "e": "", "m": {"k": "v"}, "n": 1, "f": 1.5, "t": true, "z": null, "a": ["q"]});
        assert_eq!(group("$(s)", &body).unwrap(), "x.y");
        assert_eq!(group("a$(e)b$(m)c", &body).unwrap(), "abc");
        for var in ["$(n)", "$(f)", "$(t)", "$(z)", "$(a)", "$(missing)"] {
            assert_eq!(group(&format!("p-{var}"), &body), Err(var.to_owned()));
        }
        // a string ignores what follows its key; a map walk writes its text
        assert_eq!(stream("$(s['k'])", &body).unwrap(), "x y");
        assert_eq!(stream("$(m[\"k\"])", &body).unwrap(), "[\"k\"]");
        assert_eq!(stream("$(m['k']x['k'])", &body).unwrap(), "vxv");
        // an empty name falls back as a whole
        assert_eq!(group("$(e)", &body), Err("$(e)".to_owned()));
    }

    #[test]
    fn tag_parts_as_go_splits_them() {
        let tag = "a.b.c.d.e.f.g.h.i.j.k";
        let r = |t: &str| render(t, NameKind::Stream, tag, &json!({}));
        assert_eq!(r("$(tag[9])").unwrap(), "j.k");
        assert_eq!(r("$(tag[0])").unwrap(), "a");
        assert_eq!(r("$(tag[10])").unwrap(), "b");
        assert_eq!(r("$(tag[x])").unwrap(), "a");
        assert_eq!(r("$(tag[)").unwrap(), tag);
        assert_eq!(render("$(tag[2])", NameKind::Stream, "a.b", &json!({})), Err("$(tag[2])".to_owned()));
        // an empty part is written empty
        assert_eq!(render("x$(tag[1])", NameKind::Stream, "a..b", &json!({})).unwrap(), "x");
    }

    #[test]
    fn duplicate_keys_last_wins() {
        // {"k": "first", "k": "last"}
        let body = [0x82, 0xa1, b'k', 0xa5, b'f', b'i', b'r', b's', b't', 0xa1, b'k', 0xa4, b'l', b'a', b's', b't'];
        let (t, _) = GoTemplate::parse("$(k)", NameKind::Stream);
        let mut out = String::new();
        t.render("t", &body, &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "last");
        assert!(t.render("t", &body[..body.len() - 1], &Vars::default(), &mut out).is_err());
    }

    #[test]
    fn defaults_are_our_extension() {
        let body = json!({"m": {"a": "x"}});
        assert_eq!(stream("$(m['a']['nope']:-d)-$(missing:-)", &body).unwrap(), "d-");
        assert_eq!(group("$(ecs_cluster:-local) x", &body).unwrap(), "cluster.x");
        let (t, _) = GoTemplate::parse("$(ecs_cluster:-local)", NameKind::Group);
        let mut out = String::new();
        t.render("t", &[], &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "local");
    }

    #[test]
    fn names_are_cut_to_512_bytes() {
        let body = json!({"v": "é".repeat(300)});
        assert_eq!(group("$(v)", &body).unwrap(), ".".repeat(512));
        let s = stream("x$(v)z", &body).unwrap();
        assert_eq!(s, format!("x{}", "é".repeat(255)));
    }

    #[test]
    fn what_a_template_uses_and_its_readings() {
        let p = |s| GoTemplate::parse(s, NameKind::Stream).0;
        assert!(p("plain $TAG").is_static());
        assert!(p("$(a)").uses_record() && !p("$(tag)").uses_record());
        assert!(p("$(ecs_task_id)").uses_ecs() && p("$(uuid)").uses_uuid());
        assert_eq!(p("x-$(a['b'])").to_string(), "x-$(a['b'])");
        assert!(readings("/aws/$(tag[1])/$(k8s['ns']['pod'])-$(uuid)", NameKind::Group).is_empty());
        let r = readings("$(tag[10])/$(a[\"b\"])/$( x)/$(ecs_foo)/$(tag[)", NameKind::Stream);
        assert_eq!(r.len(), 5, "{r:?}");
        assert!(r[0].contains("'$(tag[10])' is tag part 1"), "{r:?}");
        assert!(r[1].contains("the text '[\"b\"]'"), "{r:?}");
        assert!(r[2].contains("record key ' x'"), "{r:?}");
        assert!(r[3].contains("ECS variables"), "{r:?}");
        assert!(r[4].contains("whole tag"), "{r:?}");
        let r = readings("my app#1 $TAG", NameKind::Group);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].contains("'my app#1 $TAG' is written 'my.app.1..TAG'") && r[0].contains("'$' not followed"));
        assert!(readings("a$(b", NameKind::Stream)[0].contains("has no ')'"));
    }
}
