//! Log group and stream names from templates, in the syntax of either peer plugin, so a user of
//! either can keep their text:
//!
//! - the Go plugin's: `$(tag)`, `$(tag[n])`, `$(uuid)`, `$(ecs_cluster)`, `$(ecs_task_arn)`,
//!   `$(ecs_task_id)`, `$(key)`, `$(key['sub']['x'])`, each with an optional default,
//!   `$(key['sub']:-fallback)`;
//! - Fluent Bit's record accessor, as the C plugin reads it (`record_accessor`): `$TAG`,
//!   `$TAG[n]`, `$key`, `$key-dash['sub'][0]`; a variable runs up to the next `.`, ` `, `,` or
//!   `"`, so `$a.$b` is two variables and `$a-$b` a syntax error, as in Fluent Bit.
//!
//! Everything else is literal text. Mistakes are found when the template is parsed; rendering
//! only decides, per record, whether every variable has a value.

use std::fmt::{self, Write as _};
use std::ops::Range;

use crate::core::msgpack::{Reader, Token};
use crate::core::names::NameKind;
use crate::core::record_accessor::{self, Piece};
use crate::core::record_path::{parse_subscripts, RecordPath};

/// The longest template accepted.
pub const MAX_TEMPLATE_BYTES: usize = 1024;

/// The variables a template may use, for error texts.
const VARIABLES: &str = "$(tag), $(tag[n]), $(uuid), $(ecs_cluster), $(ecs_task_arn), $(ecs_task_id), $(key), \
                         $(key['sub']), $(key:-default), $TAG, $TAG[n], $key, $key['sub']";

/// A parsed name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    kind: NameKind,
    parts: Vec<Part>,
    /// What was read leniently, as Fluent Bit reads it: one line each, for Init to log.
    notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A range of `text`.
    Literal(Range<usize>),
    /// `span` is the variable as written (for `Unresolved`); `default` a range of `text`.
    Var { var: Var, default: Option<Range<usize>>, span: Range<usize> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Tag,
    TagPart(usize),
    Uuid,
    EcsCluster,
    EcsTaskArn,
    EcsTaskId,
    Record(RecordPath),
    /// Fluent Bit's record accessor: `$TAG`, `$TAG[n]`, `$key['sub'][0]`.
    Accessor(record_accessor::Variable),
}

/// The ECS task the plugin runs in, from the task metadata endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsMetadata {
    pub cluster: String,
    pub task_arn: String,
    pub task_id: String,
}

/// What variables other than the record and tag resolve to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub uuid: &'a str,
    pub ecs: Option<&'a EcsMetadata>,
}

/// The first variable that could not be resolved, as written in the template (e.g. `$(kubernetes['namespace_name'])`).
/// It borrows the template's text, so a record that falls back allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved<'t> {
    pub variable: &'t str,
}

impl fmt::Display for Unresolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no value for {}", self.variable)
    }
}

impl std::error::Error for Unresolved<'_> {}

impl Template {
    pub fn parse(text: &str, kind: NameKind) -> Result<Template, String> {
        if text.is_empty() {
            return Err(format!("empty name template: write the name, or a template using {VARIABLES}"));
        }
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(format!("name template of {} bytes: at most {MAX_TEMPLATE_BYTES} are allowed", text.len()));
        }
        let ends: &[u8] = if kind == NameKind::Role { b":" } else { b"" };
        let (pieces, notes) = record_accessor::split(text, ends, |dollar| {
            parse_go_variable(text, dollar, kind).map(|(var, default, end)| ((var, default), end))
        })?;
        let (mut parts, mut notes) = (Vec::with_capacity(pieces.len()), notes);
        for piece in pieces {
            parts.push(match piece {
                Piece::Literal(range) => {
                    // the C plugin starts with such text (and every call then fails): start, and
                    // write what CloudWatch refuses as '.', as in a value
                    match check_literal(text, range.clone(), kind) {
                        // a role is never sanitised into shape: its text must already be an ARN's
                        Err(why) if kind == NameKind::Role => return Err(why),
                        Err(why) => notes.push(format!("{why}; it is written '.'")),
                        Ok(()) => {}
                    }
                    Part::Literal(range)
                }
                Piece::Accessor(var, span) => Part::Var { var: Var::Accessor(var), default: None, span },
                Piece::Other((var, default), span) => Part::Var { var, default, span },
            });
        }
        Ok(Template { text: text.to_owned(), kind, parts, notes })
    }

    /// Places read leniently, as the peer reads them (e.g. a character Fluent Bit's lexer skips).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// No variables at all: the name is the text.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Some variable reads the record (so names must be rendered per record, not per chunk).
    pub fn uses_record(&self) -> bool {
        self.uses(|v| matches!(v, Var::Record(_) | Var::Accessor(record_accessor::Variable::Key(_))))
    }

    pub fn uses_ecs(&self) -> bool {
        self.uses(|v| matches!(v, Var::EcsCluster | Var::EcsTaskArn | Var::EcsTaskId))
    }

    pub fn uses_uuid(&self) -> bool {
        self.uses(|v| matches!(v, Var::Uuid))
    }

    fn uses(&self, test: impl Fn(&Var) -> bool) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var { var, .. } if test(var)))
    }

    /// Clears `out` and writes the name. `$(...)` record values: strings as they are (invalid UTF-8 → U+FFFD),
    /// integers/floats/bools as their text; nil, maps, arrays, empty strings → unresolved (unless the variable has
    /// a `:-` default); `$(tag[n])` = the n-th `.`-separated part of the tag (0-based), out of range →
    /// unresolved. Record-accessor values as Fluent Bit writes them (see `record_accessor`): empty strings,
    /// `null`, `1.500000`, binary as hex, `$TAG[n]` out of range empty; a missing key, an array or a map →
    /// unresolved. ECS variables with `vars.ecs == None` → unresolved. Damaged msgpack → unresolved.
    /// Then the whole name is sanitised: Group: every char outside `A-Za-z0-9_-/.#` becomes `.`; Stream: `:` and
    /// `*` become `.`. Cut to 512 bytes on a char boundary. An empty result is unresolved. No allocation when `out`
    /// has capacity (use the `record_path` finder, write into `out`).
    ///
    /// On `Err`, `out` is empty. An empty name (possible only through empty `:-` defaults) reports the whole
    /// template as the variable.
    pub fn render(&self, tag: &str, body: &[u8], vars: &Vars<'_>, out: &mut String) -> Result<(), Unresolved<'_>> {
        out.clear();
        let mut name = NameWriter { out, kind: self.kind, full: false };
        for part in &self.parts {
            match part {
                Part::Literal(range) => name.push_str(&self.text[range.clone()]),
                Part::Var { var, default, span } => {
                    if write_variable(var, tag, body, vars, &mut name) {
                        continue;
                    }
                    match default {
                        Some(range) => name.push_str(&self.text[range.clone()]),
                        None => {
                            name.out.clear();
                            return Err(Unresolved { variable: &self.text[span.clone()] });
                        }
                    }
                }
            }
        }
        if name.out.is_empty() {
            return Err(Unresolved { variable: &self.text });
        }
        Ok(())
    }
}

impl fmt::Display for Template {
    /// The original text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Literal text must already obey the name's character rule: a forbidden character there is a typo, not data.
fn check_literal(text: &str, range: Range<usize>, kind: NameKind) -> Result<(), String> {
    match text[range.clone()].char_indices().find(|&(_, c)| !kind.allows(c)) {
        Some((i, c)) => Err(format!("'{c}' at byte {} is not allowed: {}", range.start + i, kind.rule())),
        None => Ok(()),
    }
}

/// `[n]` at `text[pos..]` (which starts with `[`): a tag part's index. Returns it and the position after `]`.
fn parse_index(text: &str, pos: usize) -> Result<(usize, usize), String> {
    let form = "a tag part's index is a number, e.g. $(tag[0]) or $TAG[0]";
    let Some(len) = text[pos + 1..].find(']') else {
        return Err(format!("unterminated '[' at byte {pos}: {form}"));
    };
    let digits = &text[pos + 1..pos + 1 + len];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'[{digits}]' at byte {pos}: {form}"));
    }
    let n = digits.parse().map_err(|_| format!("'[{digits}]' at byte {pos}: the index is too large"))?;
    Ok((n, pos + len + 2))
}

/// The Go plugin's form at `text[dollar..]` (which starts with `$(`), with an optional `:-default`.
fn parse_go_variable(text: &str, dollar: usize, kind: NameKind) -> Result<(Var, Option<Range<usize>>, usize), String> {
    let unterminated = || format!("unterminated '$(' at byte {dollar}: close it with ')'");
    let start = dollar + 2;
    // Like the Go plugin, a bare key may hold any character that has no meaning here.
    let name_len = text[start..]
        .find(|c: char| matches!(c, '[' | ']' | '(' | ')' | '\'' | '"' | ':' | '$') || c.is_whitespace())
        .unwrap_or(text.len() - start);
    let name = &text[start..start + name_len];
    let mut pos = start + name_len;
    let var = match name {
        "tag" if text[pos..].starts_with('[') => {
            let (n, after) = parse_index(text, pos)?;
            pos = after;
            Var::TagPart(n)
        }
        "tag" => Var::Tag,
        "uuid" => Var::Uuid,
        "ecs_cluster" => Var::EcsCluster,
        "ecs_task_arn" => Var::EcsTaskArn,
        "ecs_task_id" => Var::EcsTaskId,
        _ if name.starts_with("ecs_") => {
            return Err(format!(
                "unknown '$({name})' at byte {dollar}: the ECS variables are $(ecs_cluster), $(ecs_task_arn) and \
                 $(ecs_task_id)"
            ));
        }
        _ => {
            let mut keys = Vec::new();
            if !name.is_empty() {
                keys.push(name.to_owned());
            }
            pos = parse_subscripts(text, pos, &mut keys).map_err(|e| format!("variable at byte {dollar}: {e}"))?;
            match RecordPath::from_keys(keys) {
                Some(path) => Var::Record(path),
                None if text[pos..].starts_with(')') => {
                    return Err(format!("empty '$()' at byte {dollar}: use {VARIABLES}"));
                }
                None => return Err(not_a_variable_end(text, pos, dollar)),
            }
        }
    };
    let rest = &text[pos..];
    if rest.starts_with(')') {
        return Ok((var, None, pos + 1));
    }
    if rest.starts_with(":-") {
        let from = pos + 2;
        let Some(len) = text[from..].find(')') else {
            return Err(unterminated());
        };
        let default = from..from + len;
        if let Some(c) = text[default.clone()].chars().find(|&c| c == '$' || c == '(') {
            return Err(format!("'{c}' in the default of the variable at byte {dollar}: a default is plain text"));
        }
        check_literal(text, default.clone(), kind)?;
        let end = default.end + 1;
        return Ok((var, Some(default), end));
    }
    Err(not_a_variable_end(text, pos, dollar))
}

/// The error for `text[pos..]`, inside the `$(` at `dollar`, where a variable should have ended.
fn not_a_variable_end(text: &str, pos: usize, dollar: usize) -> String {
    match text[pos..].chars().next() {
        None => format!("unterminated '$(' at byte {dollar}: close it with ')'"),
        Some('(') => {
            format!("'{}' at byte {dollar}: functions are not supported; use {VARIABLES}", &text[dollar..=pos])
        }
        Some(c) => format!("unexpected '{c}' at byte {pos} in the variable at byte {dollar}: use {VARIABLES}"),
    }
}

/// Writes a variable's value; false (and nothing written) when it has none.
fn write_variable(var: &Var, tag: &str, body: &[u8], vars: &Vars<'_>, name: &mut NameWriter<'_>) -> bool {
    match var {
        Var::Tag => name.push_value(tag),
        Var::TagPart(n) => tag.split('.').nth(*n).is_some_and(|part| name.push_value(part)),
        Var::Uuid => name.push_value(vars.uuid),
        Var::EcsCluster => vars.ecs.is_some_and(|e| name.push_value(&e.cluster)),
        Var::EcsTaskArn => vars.ecs.is_some_and(|e| name.push_value(&e.task_arn)),
        Var::EcsTaskId => vars.ecs.is_some_and(|e| name.push_value(&e.task_id)),
        // a damaged body is just a record without the value: the caller falls back as for a missing key
        Var::Record(path) => match path.find(body) {
            Ok(Some(raw)) => write_record_value(raw, name),
            Ok(None) | Err(_) => false,
        },
        Var::Accessor(var) => write_accessor(var, tag, body, name),
    }
}

/// A record-accessor variable's value as Fluent Bit writes it; false when it has none.
fn write_accessor(var: &record_accessor::Variable, tag: &str, body: &[u8], name: &mut NameWriter<'_>) -> bool {
    use record_accessor::{Value, Variable};
    match var {
        Variable::Tag => name.push_str(tag),
        Variable::TagPart(n) => name.push_str(record_accessor::tag_part(tag, *n)),
        Variable::Capture { first } => return !first,
        // a damaged body is just a record without the value, as for a missing key
        Variable::Key(accessor) => match accessor.value(body) {
            None => return false,
            Some(Value::Str(s)) => name.push_lossy(s),
            Some(Value::Bin(b)) => {
                for byte in b {
                    // through `fmt` from the stack: no allocation
                    let _ = write!(name, "{byte:02x}");
                }
            }
            Some(Value::Int(n)) => {
                let _ = write!(name, "{n}");
            }
            Some(Value::Float(f)) => {
                let _ = record_accessor::write_c_float(f, name);
            }
            Some(Value::Bool(b)) => name.push_str(if b { "true" } else { "false" }),
            Some(Value::Null) => name.push_str("null"),
        },
    }
    true
}

fn write_record_value(raw: &[u8], name: &mut NameWriter<'_>) -> bool {
    // Formatting numbers through `fmt` writes from stack buffers: no allocation.
    match Reader::new(raw).next_token() {
        Ok(Token::Str(s) | Token::Bin(s)) if !s.is_empty() => {
            name.push_lossy(s);
            true
        }
        Ok(Token::UInt(n)) => write!(name, "{n}").is_ok(),
        Ok(Token::Int(n)) => write!(name, "{n}").is_ok(),
        Ok(Token::F32(f)) => write!(name, "{f}").is_ok(),
        Ok(Token::F64(f)) => write!(name, "{f}").is_ok(),
        Ok(Token::Bool(b)) => name.push_value(if b { "true" } else { "false" }),
        // nil, empty strings, containers, ext values: nothing that reads as a name
        _ => false,
    }
}

/// Writes into the name, sanitising each character as it goes and stopping (on a character boundary) at 512
/// bytes, so `out` never grows past the limit however long a record value is.
struct NameWriter<'o> {
    out: &'o mut String,
    kind: NameKind,
    /// A character did not fit: nothing after it may be written either.
    full: bool,
}

impl NameWriter<'_> {
    fn push_char(&mut self, c: char) {
        let c = self.kind.sanitise(c);
        if self.out.len() + c.len_utf8() > self.kind.max_bytes() {
            self.full = true;
        } else {
            self.out.push(c);
        }
    }

    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if self.full {
                return;
            }
            self.push_char(c);
        }
    }

    /// A non-empty value; false for an empty one, which counts as no value.
    fn push_value(&mut self, s: &str) -> bool {
        self.push_str(s);
        !s.is_empty()
    }

    fn push_lossy(&mut self, s: &[u8]) {
        for chunk in s.utf8_chunks() {
            if self.full {
                return;
            }
            self.push_str(chunk.valid());
            if !chunk.invalid().is_empty() && !self.full {
                self.push_char('\u{FFFD}');
            }
        }
    }
}

impl fmt::Write for NameWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::MAX_NAME_BYTES;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn msgpack(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    fn ecs() -> EcsMetadata {
        EcsMetadata {
            cluster: "prod".into(),
            task_arn: "arn:aws:ecs:eu-west-1:111122223333:task/prod/abc123".into(),
            task_id: "abc123".into(),
        }
    }

    /// Renders `template` for a stream (or a group) with tag `app.web.1`, uuid `u-1` and ECS metadata.
    fn render_kind(template: &str, kind: NameKind, body: &Value) -> Result<String, String> {
        let t = Template::parse(template, kind).unwrap_or_else(|e| panic!("{template}: {e}"));
        let meta = ecs();
        let vars = Vars { uuid: "u-1", ecs: Some(&meta) };
        let mut out = String::new();
        t.render("app.web.1", &msgpack(body), &vars, &mut out).map(|()| out).map_err(|u| u.variable.to_owned())
    }

    fn stream(template: &str, body: &Value) -> Result<String, String> {
        render_kind(template, NameKind::Stream, body)
    }

    fn unresolved(variable: &str) -> Result<String, String> {
        Err(variable.to_owned())
    }

    fn k8s() -> Value {
        json!({"kubernetes": {"namespace_name": "ns1", "pod_name": "pod-7", "labels": {"app": "web"}}, "a": "A", "b": 2})
    }

    #[test]
    fn go_plugin_forms() {
        let body = k8s();
        assert_eq!(stream("$(tag)", &body).unwrap(), "app.web.1");
        assert_eq!(stream("$(tag[0])-$(tag[2])", &body).unwrap(), "app-1");
        assert_eq!(stream("x/$(uuid)", &body).unwrap(), "x/u-1");
        assert_eq!(stream("$(ecs_cluster)/$(ecs_task_id)", &body).unwrap(), "prod/abc123");
        assert_eq!(stream("$(ecs_task_arn)", &body).unwrap(), "arn.aws.ecs.eu-west-1.111122223333.task/prod/abc123");
        assert_eq!(stream("$(a)", &body).unwrap(), "A");
        assert_eq!(stream("$(kubernetes['labels']['app'])", &body).unwrap(), "web");
        assert_eq!(stream("$(kubernetes[\"namespace_name\"]).x", &body).unwrap(), "ns1.x");
        // a bare key may hold characters a record accessor's may not, as in the Go plugin
        assert_eq!(stream("$(my-key.x)", &json!({"my-key.x": "v"})).unwrap(), "v");
        assert_eq!(stream("$(['odd key'])", &json!({"odd key": "v"})).unwrap(), "v");
    }

    #[test]
    fn record_accessor_forms() {
        let body = k8s();
        assert_eq!(stream("$TAG", &body).unwrap(), "app.web.1");
        assert_eq!(stream("$TAG[1]", &body).unwrap(), "web");
        assert_eq!(stream("$a", &body).unwrap(), "A");
        assert_eq!(stream("$kubernetes['labels']['app']", &body).unwrap(), "web");
        assert_eq!(stream("$a.$b", &body).unwrap(), "A.2");
        assert_eq!(stream("$TAG[1]_$kubernetes['pod_name']", &body).unwrap(), "web_pod-7");
        assert_eq!(stream("$a $a, $a.$a", &body).unwrap(), "A A, A.A");
        // `$tag` is a key; `$TAGS` is the tag and an `S`, as in Fluent Bit
        assert_eq!(stream("$TAGS/$tag", &json!({"TAGS": "x", "tag": "y"})).unwrap(), "app.web.1S/y");
    }

    #[test]
    fn what_a_template_uses() {
        let p = |s| Template::parse(s, NameKind::Stream).unwrap();
        let t = p("plain-name");
        assert!(t.is_static() && !t.uses_record() && !t.uses_ecs() && !t.uses_uuid());
        assert_eq!(t.to_string(), "plain-name");
        let t = p("$TAG");
        assert!(!t.is_static() && !t.uses_record());
        assert!(p("$(tag[1])-$a").uses_record());
        assert!(p("$(a['b']:-x)").uses_record());
        assert!(p("$(ecs_task_id)").uses_ecs() && !p("$(ecs_task_id)").uses_uuid());
        assert!(p("$(uuid)").uses_uuid());
        assert_eq!(p("$TAG[1]_$k['p'] $(x:-y)").to_string(), "$TAG[1]_$k['p'] $(x:-y)");
    }

    #[test]
    fn per_variable_default() {
        let body = k8s();
        assert_eq!(stream("$(kubernetes['nope']:-none)/$(a:-z)", &body).unwrap(), "none/A");
        assert_eq!(stream("$(tag[9]:-t)", &body).unwrap(), "t");
        assert_eq!(stream("x$(missing:-)", &body).unwrap(), "x");
        // an empty default that leaves nothing: the template is reported
        assert_eq!(stream("$(missing:-)", &body), unresolved("$(missing:-)"));
    }

    #[test]
    fn record_values() {
        let body = json!({"s": "text", "u": 42, "i": -7, "f": 1.5, "g": 2.0, "t": true, "n": null, "e": "",
                          "m": {"x": 1}, "em": {}, "arr": [1]});
        assert_eq!(stream("$(s)/$(u)/$(i)/$(f)/$(g)/$(t)", &body).unwrap(), "text/42/-7/1.5/2/true");
        for var in ["$(n)", "$(e)", "$(m)", "$(em)", "$(arr)", "$(zz)", "$(s['x'])"] {
            assert_eq!(stream(&format!("a-{var}-b"), &body), unresolved(var));
        }
        assert_eq!(
            stream("$(kubernetes['namespace_name'])", &json!({"kubernetes": {}})),
            unresolved("$(kubernetes['namespace_name'])")
        );
        // {"s": str(61 ff), "b": bin("ok")}
        let odd = [0x82, 0xa1, b's', 0xa2, 0x61, 0xff, 0xa1, b'b', 0xc4, 0x02, b'o', b'k'];
        let t = Template::parse("$(s)-$(b)", NameKind::Stream).unwrap();
        let mut out = String::new();
        t.render("t", &odd, &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "a\u{FFFD}-ok");
    }

    #[test]
    fn damaged_msgpack_is_unresolved() {
        let t = Template::parse("$(a:-d)-$b", NameKind::Stream).unwrap();
        let mut out = String::from("old");
        let body = msgpack(&json!({"a": "x", "b": "y"}));
        assert_eq!(
            t.render("t", &body[..body.len() - 1], &Vars::default(), &mut out),
            Err(Unresolved { variable: "$b" })
        );
        assert_eq!(out, "");
        assert_eq!(t.render("t", &[], &Vars::default(), &mut out), Err(Unresolved { variable: "$b" }));
        // the tag needs no body
        let t = Template::parse("$TAG", NameKind::Stream).unwrap();
        t.render("t", &[0xc1], &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "t");
    }

    #[test]
    fn tag_parts() {
        let t = Template::parse("$TAG[0]/$(tag[3])", NameKind::Stream).unwrap();
        let mut out = String::new();
        let r = |tag: &str, out: &mut String| t.render(tag, &[], &Vars::default(), out);
        r("a.b.c.d", &mut out).unwrap();
        assert_eq!(out, "a/d");
        assert_eq!(r("a.b.c", &mut out), Err(Unresolved { variable: "$(tag[3])" }));
        // an empty part is no part for `$(tag[n])`; for `$TAG[n]` it is empty text, as in Fluent Bit
        assert_eq!(r("a.b..", &mut out), Err(Unresolved { variable: "$(tag[3])" }));
        r(".b.c.d", &mut out).unwrap();
        assert_eq!(out, "/d");
        let whole = Template::parse("$TAG", NameKind::Stream).unwrap();
        assert_eq!(whole.render("", &[], &Vars::default(), &mut out), Err(Unresolved { variable: "$TAG" }));
    }

    #[test]
    fn ecs_and_uuid_with_and_without_values() {
        let t = Template::parse("$(ecs_cluster)-$(ecs_task_id)", NameKind::Group).unwrap();
        let meta = ecs();
        let mut out = String::new();
        t.render("t", &[], &Vars { uuid: "", ecs: Some(&meta) }, &mut out).unwrap();
        assert_eq!(out, "prod-abc123");
        assert_eq!(
            t.render("t", &[], &Vars { uuid: "", ecs: None }, &mut out),
            Err(Unresolved { variable: "$(ecs_cluster)" })
        );
        let fallback = Template::parse("$(ecs_cluster:-local)", NameKind::Group).unwrap();
        fallback.render("t", &[], &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "local");
        let empty = EcsMetadata::default();
        assert!(t.render("t", &[], &Vars { uuid: "", ecs: Some(&empty) }, &mut out).is_err());
        let u = Template::parse("$(uuid)", NameKind::Stream).unwrap();
        assert_eq!(u.render("t", &[], &Vars::default(), &mut out), Err(Unresolved { variable: "$(uuid)" }));
    }

    #[test]
    fn group_names_are_sanitised() {
        let body = json!({"a": "my app/ns:1", "u": "é*x#"});
        assert_eq!(render_kind("/logs/$a", NameKind::Group, &body).unwrap(), "/logs/my.app/ns.1");
        assert_eq!(render_kind("$(u)_$TAG", NameKind::Group, &body).unwrap(), "..x#_app.web.1");
    }

    #[test]
    fn stream_names_are_sanitised() {
        let body = json!({"a": "my app/ns:1", "u": "é*x#"});
        assert_eq!(stream("$a $u", &body).unwrap(), "my app/ns.1 é.x#");
        let t = Template::parse("s-$TAG", NameKind::Stream).unwrap();
        let mut out = String::new();
        t.render("a:b*c", &[], &Vars::default(), &mut out).unwrap();
        assert_eq!(out, "s-a.b.c");
    }

    #[test]
    fn names_are_cut_to_512_bytes_on_a_char_boundary() {
        let body = json!({"v": "é".repeat(300), "w": "a".repeat(2000)});
        let name = stream("x$v", &body).unwrap();
        assert_eq!(name.len(), 511);
        assert!(name.ends_with('é'));
        assert_eq!(stream("$v", &body).unwrap().len(), 512);
        // nothing after a character that did not fit, even if it would
        assert_eq!(stream("x$(v)z", &body).unwrap(), format!("x{}", "é".repeat(255)));
        assert_eq!(stream("$w", &body).unwrap().len(), 512);
        // a group name is ASCII after sanitising: every `é` is one `.`
        assert_eq!(render_kind("$v", NameKind::Group, &body).unwrap(), ".".repeat(300));
        // and a later unresolved variable still counts
        assert_eq!(stream("$w.$missing", &body), unresolved("$missing"));
    }

    #[test]
    fn rendering_reuses_the_buffer() {
        let t = Template::parse("$TAG-$a.$(b:-x).$n", NameKind::Stream).unwrap();
        let body = msgpack(&json!({"a": "é".repeat(1000), "n": 1.25}));
        let mut out = String::with_capacity(MAX_NAME_BYTES);
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        for _ in 0..3 {
            t.render("tag", &body, &Vars::default(), &mut out).unwrap();
            assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
        }
        assert_eq!(out.len(), 512);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, NameKind, &str)] = &[
            ("$(tag", NameKind::Stream, "unterminated"),
            ("$(a['b']", NameKind::Stream, "unterminated"),
            ("$(a:-x", NameKind::Stream, "unterminated"),
            ("$(", NameKind::Stream, "unterminated"),
            ("$()", NameKind::Stream, "empty"),
            ("$(upper(tag))", NameKind::Stream, "functions"),
            ("$(tag(1))", NameKind::Stream, "functions"),
            ("$(a:-x(y))", NameKind::Stream, "plain text"),
            ("$(ecs_foo)", NameKind::Stream, "ECS"),
            ("$(tag[x])", NameKind::Stream, "number"),
            ("$(tag['a'])", NameKind::Stream, "number"),
            ("$(tag[])", NameKind::Stream, "number"),
            ("$(tag[99999999999999999999999])", NameKind::Stream, "too large"),
            ("$(uuid[1])", NameKind::Stream, "unexpected '['"),
            ("$( tag)", NameKind::Stream, "unexpected ' '"),
            ("$(a:b)", NameKind::Stream, "unexpected ':'"),
            ("$(a:-x y)", NameKind::Group, "A-Z a-z 0-9 _ - / . #"),
            ("$$a", NameKind::Stream, "a key starts with a letter"),
            ("$a-$b", NameKind::Stream, "unexpected text after the key"),
            ("$a[", NameKind::Stream, "a subscript is a quoted key or an index"),
            ("$a['b'", NameKind::Stream, "a subscript ends with ']'"),
            ("$a[b]", NameKind::Stream, "a subscript is a quoted key or an index"),
            ("$a[\"b\"]", NameKind::Stream, "a subscript is a quoted key or an index"),
            ("$['b']", NameKind::Stream, "a key starts with a letter"),
            ("", NameKind::Stream, "empty name template"),
        ];
        for &(text, kind, expected) in cases {
            let err = Template::parse(text, kind).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains('\n'), "{text}: {err}");
        }
        let long = "a".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(Template::parse(&long, NameKind::Stream).unwrap_err().contains("at most 1024"));
        assert!(Template::parse(&long[1..], NameKind::Stream).is_ok());
    }

    /// The C plugin starts with literal text CloudWatch refuses (and every call then fails): it
    /// starts here too, with a note (Init's warning), and the text is written as CloudWatch takes it.
    #[test]
    fn literal_text_cloudwatch_refuses_is_sanitised_with_a_note() {
        for (text, kind, rendered) in [
            ("my app", NameKind::Group, "my.app"),
            ("a:$TAG", NameKind::Group, "a.tag"),
            ("a:b", NameKind::Stream, "a.b"),
            ("$TAG*", NameKind::Stream, "tag."),
        ] {
            let t = Template::parse(text, kind).unwrap();
            assert_eq!(t.notes().len(), 1, "{text}: {:?}", t.notes());
            assert!(t.notes()[0].contains("it is written '.'"), "{:?}", t.notes());
            let mut out = String::new();
            t.render("tag", &msgpack(&serde_json::json!({})), &Vars::default(), &mut out).unwrap();
            assert_eq!(out, rendered, "{text}");
        }
    }

    fn piece() -> impl Strategy<Value = String> {
        let variables = vec![
            "$TAG",
            "$TAG[0]",
            "$TAG[2]",
            "$(tag)",
            "$(tag[1])",
            "$(tag[5]:-t5)",
            "$(uuid)",
            "$(ecs_cluster)",
            "$(ecs_task_arn:-arn)",
            "$(ecs_task_id)",
            "$a",
            "$a['b']",
            "$(a['b']['c'])",
            "$(c:-dflt)",
            "$(c:-)",
            "$['b']",
            "$(b)",
            "$(b:-é)",
        ];
        let safe = vec!["-", "/", ".", "#", "x", "_"];
        // characters only some kinds allow, and pieces that break the syntax
        let risky = vec!["é", " ", ":", "*", "$", "$(", "[", "'", ")"];
        prop_oneof![
            6 => prop::sample::select(variables).prop_map(str::to_owned),
            3 => prop::sample::select(safe).prop_map(str::to_owned),
            1 => prop::sample::select(risky).prop_map(str::to_owned),
            1 => "[a-z]{100,300}",
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            (1usize..400).prop_map(|n| Value::from("é:*".repeat(n))),
        ]
    }

    fn record() -> impl Strategy<Value = Value> {
        let value = leaf().prop_recursive(3, 20, 4, |inner| {
            prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
        });
        prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), value), 0..4)
            .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    proptest! {
        // many random templates fail to parse or to resolve: run enough cases to render plenty
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn render_never_panics_and_names_obey_the_rules(
            pieces in prop::collection::vec(piece(), 1..8),
            group in any::<bool>(),
            body in record(),
            cut in any::<prop::sample::Index>(),
            damage in any::<bool>(),
            tag in "[a-z.:*é]{0,12}",
            uuid in "[a-f0-9-]{0,8}",
            with_ecs in any::<bool>(),
        ) {
            let kind = if group { NameKind::Group } else { NameKind::Stream };
            let text = pieces.concat();
            let Ok(t) = Template::parse(&text, kind) else { return Ok(()) };
            prop_assert_eq!(t.to_string(), text.clone());
            let mut bytes = msgpack(&body);
            if damage {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let meta = ecs();
            let vars = Vars { uuid: &uuid, ecs: with_ecs.then_some(&meta) };
            let mut out = String::from("stale");
            match t.render(&tag, &bytes, &vars, &mut out) {
                Ok(()) => {
                    prop_assert!(!out.is_empty() && out.len() <= MAX_NAME_BYTES, "{} bytes", out.len());
                    prop_assert!(out.chars().all(|c| kind.allows(c)), "{:?} for {:?}", out, kind);
                    if t.is_static() && !text.contains('$') && text.len() <= MAX_NAME_BYTES && t.notes().is_empty() {
                        prop_assert_eq!(&out, &text);
                    }
                }
                Err(u) => {
                    prop_assert!(out.is_empty());
                    prop_assert!(text.contains(u.variable), "{:?} not in {:?}", u.variable, text);
                }
            }
        }
    }
}
