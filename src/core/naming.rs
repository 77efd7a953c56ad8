//! Log group and stream names: the rule (fixed, tag prefix or template with a fallback) that
//! names each record's group and stream. What CloudWatch allows in a name is `names`'.

use std::fmt;

use crate::core::go_template::GoTemplate;
use crate::core::names::{cut_to, NameKind, MAX_NAME_BYTES};
use crate::core::template::{Template, Unresolved, Vars};

/// How the log group or the log stream of a record is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRule {
    /// Always this name (`log_group_name`, `log_stream_name`).
    Fixed(String),
    /// Prefix + the chunk's tag (`log_stream_prefix`): `:` and `*`, which CloudWatch forbids,
    /// become `.` (the stream rule, whatever the name).
    TagPrefix(String),
    /// Rendered per chunk or per record; `fallback` (never a template) when a variable cannot
    /// be resolved.
    Template { template: NameTemplate, fallback: Box<NameRule> },
}

/// A name with variables, in the syntax of the key it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTemplate {
    /// `log_group_template` / `log_stream_template`.
    Accessor(Template),
    /// `$(...)` in `log_group_name` / `log_stream_name`, as the Go plugin reads it.
    Go(GoTemplate),
}

impl NameTemplate {
    pub fn uses_record(&self) -> bool {
        match self {
            NameTemplate::Accessor(t) => t.uses_record(),
            NameTemplate::Go(t) => t.uses_record(),
        }
    }

    pub fn uses_ecs(&self) -> bool {
        match self {
            NameTemplate::Accessor(t) => t.uses_ecs(),
            NameTemplate::Go(t) => t.uses_ecs(),
        }
    }

    pub fn render(&self, tag: &str, body: &[u8], vars: &Vars<'_>, out: &mut String) -> Result<(), Unresolved<'_>> {
        match self {
            NameTemplate::Accessor(t) => t.render(tag, body, vars, out),
            NameTemplate::Go(t) => t.render(tag, body, vars, out),
        }
    }
}

impl From<Template> for NameTemplate {
    fn from(t: Template) -> Self {
        NameTemplate::Accessor(t)
    }
}

impl fmt::Display for NameTemplate {
    /// The text as configured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameTemplate::Accessor(t) => t.fmt(f),
            NameTemplate::Go(t) => t.fmt(f),
        }
    }
}

impl NameRule {
    /// The name depends on each record (not only on the chunk's tag).
    pub fn per_record(&self) -> bool {
        matches!(self, NameRule::Template { template, .. } if template.uses_record())
    }

    pub fn uses_ecs(&self) -> bool {
        matches!(self, NameRule::Template { template, .. } if template.uses_ecs())
    }

    /// A name that does not depend on records: the fixed name, or the fallback of a template.
    pub fn static_name(&self, tag: &str) -> String {
        let mut out = String::new();
        match self {
            NameRule::Template { fallback, .. } => fallback.write_static(tag, &mut out),
            other => other.write_static(tag, &mut out),
        }
        out
    }

    fn write_static(&self, tag: &str, out: &mut String) {
        out.clear();
        match self {
            NameRule::Fixed(name) => out.push_str(name),
            NameRule::TagPrefix(prefix) => {
                out.push_str(prefix);
                out.extend(tag.chars().map(|c| NameKind::Stream.sanitise(c)));
                cut_to(out, MAX_NAME_BYTES);
            }
            NameRule::Template { fallback, .. } => fallback.write_static(tag, out),
        }
    }

    /// Writes the name for one record into `out`. `Err` says which variable was unresolved;
    /// `out` then holds the fallback name.
    pub fn write(&self, tag: &str, body: &[u8], vars: &Vars<'_>, out: &mut String) -> Result<(), Unresolved<'_>> {
        match self {
            NameRule::Template { template, fallback } => template.render(tag, body, vars, out).inspect_err(|_| {
                fallback.write_static(tag, out);
            }),
            other => {
                other.write_static(tag, out);
                Ok(())
            }
        }
    }
}

/// Where a batch goes: the role it is written with (`None`: the instance's own credentials),
/// its group and its stream. A batch never mixes two keys, so never two roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub role: Option<String>,
    pub group: String,
    pub stream: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_plus_tag_is_sanitised_and_bounded() {
        let s = NameRule::TagPrefix("example-".into());
        assert_eq!(s.static_name("app.web"), "example-app.web");
        assert_eq!(s.static_name("a:b*c"), "example-a.b.c");
        let long = "é".repeat(400);
        let name = s.static_name(&long);
        assert!(name.len() <= 512 && name.len() >= 511);
        assert_eq!(NameRule::Fixed("x".into()).static_name("ignored"), "x");
    }

    #[test]
    fn templates_fall_back_when_a_variable_is_missing() {
        let rule = NameRule::Template {
            template: Template::parse("app-$(kubernetes['namespace_name'])", NameKind::Stream).unwrap().into(),
            fallback: Box::new(NameRule::TagPrefix("p-".into())),
        };
        assert!(rule.per_record());
        let vars = Vars { uuid: "u", ecs: None };
        let body = rmp_serde::to_vec(&serde_json::json!({"kubernetes": {"namespace_name": "prod"}})).unwrap();
        let mut out = String::new();
        assert!(rule.write("t.x", &body, &vars, &mut out).is_ok());
        assert_eq!(out, "app-prod");
        let err = rule.write("t.x", &[0x80], &vars, &mut out).unwrap_err();
        assert_eq!(out, "p-t.x");
        assert!(err.variable.contains("namespace_name"));
    }
}
