//! The grammar of an IAM policy document, as the IAM User Guide's "IAM JSON policy elements
//! reference" gives it: `Version` 2012-10-17, `Id`, `Statement` (one object or a list); a
//! statement has `Effect` (Allow or Deny), exactly one of `Action`/`NotAction`, and, by the
//! kind of policy, a principal (trust policies, which name no resource) or a resource
//! (identity policies, which name no principal), plus `Sid` and `Condition`. IAM refuses a
//! document that breaks these (MalformedPolicyDocument); nothing here calls AWS.
#![allow(dead_code)]

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// a role's trust policy (`AssumeRolePolicyDocument`)
    Trust,
    /// a policy attached to a role or user
    Identity,
}

const TOP_KEYS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_KEYS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];
const PRINCIPAL_KEYS: &[&str] = &["AWS", "Service", "Federated", "CanonicalUser"];

/// Every way `doc` breaks the grammar for `kind`, one line each (empty: well formed).
pub fn problems(doc: &Value, kind: PolicyKind) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = doc.as_object() else {
        return vec!["the document is not a JSON object".into()];
    };
    unknown_keys(top, TOP_KEYS, "the document", &mut out);
    if top.get("Version").and_then(Value::as_str) != Some("2012-10-17") {
        out.push("Version must be \"2012-10-17\" (the only version with policy variables)".into());
    }
    let statements: Vec<&Value> = match top.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => {
            out.push("Statement must be an object or a list of objects".into());
            Vec::new()
        }
    };
    if statements.is_empty() {
        out.push("no Statement".into());
    }
    for (i, s) in statements.iter().enumerate() {
        let at = format!("Statement[{i}]");
        let Some(s) = s.as_object() else {
            out.push(format!("{at} is not an object"));
            continue;
        };
        unknown_keys(s, STATEMENT_KEYS, &at, &mut out);
        if let Some(sid) = s.get("Sid") {
            if !sid.as_str().is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric())) {
                out.push(format!("{at}.Sid must be letters and digits"));
            }
        }
        if !matches!(s.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            out.push(format!("{at}.Effect must be Allow or Deny"));
        }
        if let Some(actions) = exactly_one(s, "Action", "NotAction", &at, &mut out) {
            for a in strings(actions, &format!("{at}.Action"), &mut out) {
                if !is_action(a) {
                    out.push(format!("{at}.Action {a:?} is not service:Action"));
                }
            }
        }
        match kind {
            PolicyKind::Trust => {
                for key in ["Resource", "NotResource"] {
                    if s.contains_key(key) {
                        out.push(format!("{at}: a trust policy names no {key}"));
                    }
                }
                match exactly_one(s, "Principal", "NotPrincipal", &at, &mut out) {
                    Some(Value::Object(p)) if !p.is_empty() => {
                        unknown_keys(p, PRINCIPAL_KEYS, &format!("{at}.Principal"), &mut out);
                        for (k, v) in p {
                            strings(v, &format!("{at}.Principal.{k}"), &mut out);
                        }
                    }
                    Some(Value::String(s)) if s == "*" => {}
                    Some(_) => out.push(format!("{at}.Principal must be \"*\" or an object of {PRINCIPAL_KEYS:?}")),
                    None => {}
                }
            }
            PolicyKind::Identity => {
                for key in ["Principal", "NotPrincipal"] {
                    if s.contains_key(key) {
                        out.push(format!("{at}: an identity policy names no {key}"));
                    }
                }
                if let Some(resources) = exactly_one(s, "Resource", "NotResource", &at, &mut out) {
                    for r in strings(resources, &format!("{at}.Resource"), &mut out) {
                        if r != "*" && !is_arn(r) {
                            out.push(format!("{at}.Resource {r:?} is neither \"*\" nor an ARN"));
                        }
                    }
                }
            }
        }
        if let Some(condition) = s.get("Condition") {
            match condition.as_object() {
                Some(operators) if !operators.is_empty() => {
                    for (op, keys) in operators {
                        match keys.as_object() {
                            Some(keys) if !keys.is_empty() => {
                                for (k, v) in keys {
                                    strings(v, &format!("{at}.Condition.{op}.{k}"), &mut out);
                                }
                            }
                            _ => out.push(format!("{at}.Condition.{op} must map condition keys to values")),
                        }
                    }
                }
                _ => out.push(format!("{at}.Condition must map operators to condition keys")),
            }
        }
    }
    out
}

/// The statements of a well-formed policy.
pub fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    }
}

/// A string-or-list element as a list.
pub fn list(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn unknown_keys(obj: &serde_json::Map<String, Value>, allowed: &[&str], at: &str, out: &mut Vec<String>) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            out.push(format!("{at}: unknown element {k:?} (allowed: {})", allowed.join(", ")));
        }
    }
}

fn exactly_one<'a>(
    s: &'a serde_json::Map<String, Value>,
    a: &str,
    b: &str,
    at: &str,
    out: &mut Vec<String>,
) -> Option<&'a Value> {
    match (s.get(a), s.get(b)) {
        (Some(v), None) | (None, Some(v)) => Some(v),
        (Some(_), Some(_)) => {
            out.push(format!("{at}: {a} and {b} together"));
            None
        }
        (None, None) => {
            out.push(format!("{at}: needs {a} (or {b})"));
            None
        }
    }
}

/// A string, or a non-empty list of strings.
fn strings<'a>(v: &'a Value, at: &str, out: &mut Vec<String>) -> Vec<&'a str> {
    let items = list(v);
    let well_formed = match v {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty() && items.len() == a.len() && items.iter().all(|s| !s.is_empty()),
        _ => false,
    };
    if !well_formed {
        out.push(format!("{at} must be a non-empty string or list of strings"));
    }
    items
}

fn is_action(a: &str) -> bool {
    a == "*"
        || a.split_once(':').is_some_and(|(service, action)| {
            !service.is_empty()
                && service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !action.is_empty()
                && action.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        })
}

/// `arn:partition:service:region:account:resource` (region and account may be empty).
fn is_arn(r: &str) -> bool {
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[1].starts_with("aws") && !parts[2].is_empty() && !parts[5].is_empty()
}
