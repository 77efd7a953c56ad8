//! The role a record is written with, when `role_arn_template` or `role_arn_map` chooses it per
//! record: what a syntactically valid IAM role ARN is, the `role_arn_allowed` list and what it
//! matches, the map file's lines, and the per-record decision (resolved, unresolved, denied).
//! Pure: the map file's text comes in as a string; reading it is the shell's.

use crate::core::naming::NameTemplate;
use crate::core::template::{Unresolved, Vars};
use std::collections::HashMap;
use std::fmt;

/// The longest role ARN accepted (STS's limit on `RoleArn`).
pub const MAX_ROLE_ARN_BYTES: usize = 2048;
/// IAM's limits: a role name of 1-64 characters, a path of at most 512.
const MAX_ROLE_NAME: usize = 64;
const MAX_ROLE_PATH: usize = 512;
/// The characters IAM allows in a role's path and name (besides ASCII letters and digits).
const ROLE_NAME_SYMBOLS: &[u8] = b"+=,.@_-";

/// What the allow-list and error messages say a role ARN looks like.
pub const ROLE_ARN_FORM: &str = "an IAM role ARN like arn:aws:iam::222222222222:role/name";

/// A role ARN split into the parts the allow-list matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleArn<'a> {
    pub partition: &'a str,
    pub account: &'a str,
    /// `role/` followed by the optional path and the name, e.g. `role/teams/log-writer`.
    pub resource: &'a str,
}

/// `arn:<aws partition>:iam::<12 digits>:role/[<path>/]<name>`: the name 1-64 and the path at
/// most 512 characters of `A-Za-z0-9+=,.@_-` (the path's parts separated by `/`), as IAM names
/// them. Anything else (a `:` or a `*` after the account, an empty name) is not a role ARN.
pub fn parse_role_arn(v: &str) -> Option<RoleArn<'_>> {
    if v.len() > MAX_ROLE_ARN_BYTES {
        return None;
    }
    let mut parts = v.splitn(6, ':');
    let (arn, partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let ok = arn == "arn"
        && partition.starts_with("aws")
        && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && service == "iam"
        && region.is_empty()
        && is_account_id(account);
    let path_and_name = resource.strip_prefix("role/").filter(|_| ok)?;
    let name_char = |b: u8| b.is_ascii_alphanumeric() || ROLE_NAME_SYMBOLS.contains(&b);
    let (path_ok, name) = match path_and_name.rsplit_once('/') {
        None => (true, path_and_name),
        Some((path, name)) => (
            path.len() < MAX_ROLE_PATH && path.split('/').all(|part| !part.is_empty() && part.bytes().all(name_char)),
            name,
        ),
    };
    let name_ok = (1..=MAX_ROLE_NAME).contains(&name.len()) && name.bytes().all(name_char);
    (name_ok && path_ok).then_some(RoleArn { partition, account, resource })
}

/// Twelve ASCII digits.
pub fn is_account_id(v: &str) -> bool {
    v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit())
}

/// One entry of `role_arn_allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Any role of this account, in any partition.
    Account(String),
    /// A role ARN whose role part (`role/...`) may hold `*`, matching any run of characters
    /// (`/` included); partition and account are literal.
    Arn { partition: String, account: String, resource: String },
}

/// `role_arn_allowed`: the roles a record may choose. A role must match one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

/// What `role_arn_allowed` accepts, for its error.
pub const ALLOWED_FORM: &str = "comma-separated 12-digit account ids (any role of that account) or role ARN patterns \
     like arn:aws:iam::222222222222:role/log-* ('*' only in the role part: partition and account are literal)";

impl AllowList {
    /// Entries separated by `,`, spaces trimmed, empty entries an error (a stray comma is
    /// more likely a mistake than a wish). `Err` names the entry that is neither form.
    pub fn parse(v: &str) -> Result<AllowList, String> {
        let mut patterns = Vec::new();
        for entry in v.split(',').map(str::trim) {
            if is_account_id(entry) {
                patterns.push(Pattern::Account(entry.to_owned()));
                continue;
            }
            // `*` stands for a character the role part may hold, so the rest is checked as an ARN
            let literal = entry.replace('*', "x");
            match parse_role_arn(&literal) {
                Some(arn)
                    if !arn.partition.contains('*') && !entry[..entry.len() - arn.resource.len()].contains('*') =>
                {
                    let resource = entry[entry.len() - arn.resource.len()..].to_owned();
                    patterns.push(Pattern::Arn {
                        partition: arn.partition.to_owned(),
                        account: arn.account.to_owned(),
                        resource,
                    });
                }
                _ => return Err(format!("'{entry}' is not an account id or a role ARN pattern")),
            }
        }
        Ok(AllowList { patterns })
    }

    /// Whether `role` (already a valid role ARN) is allowed.
    pub fn allows(&self, role: &RoleArn<'_>) -> bool {
        self.patterns.iter().any(|p| match p {
            Pattern::Account(account) => account == role.account,
            Pattern::Arn { partition, account, resource } => {
                partition == role.partition && account == role.account && glob(resource, role.resource)
            }
        })
    }

    /// The accounts the list names, for the startup line.
    pub fn accounts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .patterns
            .iter()
            .map(|p| match p {
                Pattern::Account(a) | Pattern::Arn { account: a, .. } => a.as_str(),
            })
            .collect();
        out.dedup();
        out
    }
}

/// `pattern` with `*` matching any run of characters, against the whole of `text`. Iterative
/// (no recursion, no allocation): the last `*` seen is where a mismatch backtracks to.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A `role_arn_map` file: `value role-arn` per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    roles: HashMap<String, String>,
}

/// Why a map file was not taken: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    pub line: usize,
    pub why: String,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

impl RoleMap {
    /// One entry per line: the value, white space, the role ARN. Blank lines and lines starting
    /// with `#` are skipped; anything else (a third field, an invalid ARN, a value given twice)
    /// makes the whole file malformed, so a typo never silently routes a tenant elsewhere.
    pub fn parse(text: &str) -> Result<RoleMap, MapError> {
        let mut roles = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |why: String| MapError { line: i + 1, why };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(value), Some(role), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("expected 'value role-arn'".to_owned()));
            };
            if parse_role_arn(role).is_none() {
                return Err(bad(format!("'{role}' is not {ROLE_ARN_FORM}")));
            }
            if roles.insert(value.to_owned(), role.to_owned()).is_some() {
                return Err(bad(format!("'{value}' is mapped twice")));
            }
        }
        Ok(RoleMap { roles })
    }

    pub fn get(&self, value: &str) -> Option<&str> {
        self.roles.get(value).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.roles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Every role the map names, sorted, each once.
    pub fn roles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.roles.values().map(String::as_str).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// How a record's role is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSource {
    /// `role_arn_template`: the rendered text is the role.
    Template(NameTemplate),
    /// `role_arn_map` with `role_arn_map_key`: the rendered key is looked up in the map.
    Map { key: NameTemplate, path: String },
}

/// `role_arn_template` / `role_arn_map`, with `role_arn_allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRouting {
    pub source: RoleSource,
    pub allowed: AllowList,
    /// The static `role_arn`: a chosen role equal to it is the instance's own credentials.
    pub fallback: Option<String>,
}

/// What a record's role turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChoice<'a> {
    /// The instance's own credentials (the static `role_arn`, else the base credentials).
    Own,
    /// This role, valid and allowed.
    Role(&'a str),
    /// No role: a variable had no value (`variable`), or the map has no entry for `value`.
    Unresolved { what: &'a str },
    /// Not a role ARN, or not in `role_arn_allowed`: never assumed.
    Denied { role: &'a str, why: Denial },
}

/// Why a chosen role is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NotARoleArn,
    NotAllowed,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denial::NotARoleArn => "not a valid IAM role ARN",
            Denial::NotAllowed => "not in role_arn_allowed",
        })
    }
}

impl RoleRouting {
    /// The role depends on each record (not only on the tag).
    pub fn per_record(&self) -> bool {
        match &self.source {
            RoleSource::Template(t) | RoleSource::Map { key: t, .. } => t.uses_record(),
        }
    }

    pub fn uses_ecs(&self) -> bool {
        match &self.source {
            RoleSource::Template(t) | RoleSource::Map { key: t, .. } => t.uses_ecs(),
        }
    }

    /// The role of one record. `scratch` holds the rendered text (the role, or the map's key);
    /// the answer borrows it, the map or the template.
    pub fn choose<'a>(
        &'a self,
        map: Option<&'a RoleMap>,
        tag: &str,
        body: &[u8],
        vars: &Vars<'_>,
        scratch: &'a mut String,
    ) -> RoleChoice<'a> {
        let role: &'a str = match &self.source {
            RoleSource::Template(t) => match t.render(tag, body, vars, scratch) {
                Ok(()) => scratch.as_str(),
                Err(Unresolved { variable }) => return RoleChoice::Unresolved { what: variable },
            },
            RoleSource::Map { key, .. } => {
                if let Err(Unresolved { variable }) = key.render(tag, body, vars, scratch) {
                    return RoleChoice::Unresolved { what: variable };
                }
                match map.and_then(|m| m.get(scratch)) {
                    Some(role) => role,
                    None => return RoleChoice::Unresolved { what: scratch.as_str() },
                }
            }
        };
        self.check(role)
    }

    /// A chosen role, held to the ARN syntax first and then to the allow-list.
    pub fn check<'a>(&self, role: &'a str) -> RoleChoice<'a> {
        let Some(arn) = parse_role_arn(role) else {
            return RoleChoice::Denied { role, why: Denial::NotARoleArn };
        };
        if self.fallback.as_deref() == Some(role) {
            return RoleChoice::Own;
        }
        if !self.allowed.allows(&arn) {
            return RoleChoice::Denied { role, why: Denial::NotAllowed };
        }
        RoleChoice::Role(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::NameKind;
    use crate::core::template::Template;
    use proptest::prelude::*;

    #[test]
    fn role_arns() {
        let ok = ["arn:aws:iam::222222222222:role/x", "arn:aws-cn:iam::222222222222:role/teams/a/log-writer"];
        for v in ok {
            assert!(parse_role_arn(v).is_some(), "{v}");
        }
        let arn = parse_role_arn("arn:aws:iam::222222222222:role/p/n").unwrap();
        assert_eq!((arn.partition, arn.account, arn.resource), ("aws", "222222222222", "role/p/n"));
        let bad = [
            "",
            "arn:aws:iam::2222:role/x",
            "arn:aws:iam::222222222222:user/x",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:iam::222222222222:role/a:role/b",
            "arn:aws:iam::222222222222:role/a*",
            "arn:aws:iam::222222222222:role//a",
            "arn:aws:iam:us-east-1:222222222222:role/x",
            "arn:aws:sts::222222222222:role/x",
            "arn:gcp:iam::222222222222:role/x",
            "arn:aws:iam::222222222222:role/a b",
            "arn:aws:iam::22222222222a:role/x",
            " arn:aws:iam::222222222222:role/x",
        ];
        for v in bad {
            assert!(parse_role_arn(v).is_none(), "{v}");
        }
        assert!(parse_role_arn(&format!("arn:aws:iam::222222222222:role/{}", "n".repeat(65))).is_none());
        let long_path = format!("arn:aws:iam::222222222222:role/{}/n", "p".repeat(600));
        assert!(parse_role_arn(&long_path).is_none());
    }

    fn allows(list: &str, role: &str) -> bool {
        AllowList::parse(list).unwrap().allows(&parse_role_arn(role).unwrap())
    }

    #[test]
    fn what_the_allow_list_matches() {
        assert!(allows("222222222222", "arn:aws:iam::222222222222:role/any/thing"));
        assert!(allows("111111111111, 222222222222", "arn:aws-cn:iam::222222222222:role/x"));
        assert!(!allows("222222222222", "arn:aws:iam::333333333333:role/x"));
        let p = "arn:aws:iam::222222222222:role/log-*";
        assert!(allows(p, "arn:aws:iam::222222222222:role/log-writer"));
        assert!(allows(p, "arn:aws:iam::222222222222:role/log-"));
        assert!(!allows(p, "arn:aws:iam::222222222222:role/admin"));
        assert!(!allows(p, "arn:aws-cn:iam::222222222222:role/log-writer"));
        assert!(!allows(p, "arn:aws:iam::333333333333:role/log-writer"));
        assert!(allows("arn:aws:iam::222222222222:role/*/w", "arn:aws:iam::222222222222:role/a/b/w"));
        assert!(!allows("arn:aws:iam::222222222222:role/x", "arn:aws:iam::222222222222:role/xy"));
        for bad in ["", "2222", "22222222222*", "arn:aws:iam::*:role/x", "arn:*:iam::222222222222:role/x", "a,,b"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn map_files() {
        let m = RoleMap::parse(
            "# team → role\n\nteam-a arn:aws:iam::222222222222:role/w\n  team-b\tarn:aws:iam::333333333333:role/w  \n",
        )
        .unwrap();
        assert_eq!(m.get("team-a"), Some("arn:aws:iam::222222222222:role/w"));
        assert_eq!(m.get("team-b"), Some("arn:aws:iam::333333333333:role/w"));
        assert_eq!(m.get("team-c"), None);
        assert_eq!(m.roles().len(), 2);
        let err = |t: &str| RoleMap::parse(t).unwrap_err();
        assert_eq!(err("a arn:aws:iam::222222222222:role/w\nb\n").line, 2);
        assert!(err("a arn:aws:iam::222222222222:role/w x").why.contains("expected"));
        assert!(err("a arn:aws:iam::2:role/w").why.contains("IAM role ARN"));
        assert!(err("a arn:aws:iam::222222222222:role/w\na arn:aws:iam::222222222222:role/v").why.contains("twice"));
    }

    fn routing(source: RoleSource) -> RoleRouting {
        RoleRouting {
            source,
            allowed: AllowList::parse("222222222222,333333333333").unwrap(),
            fallback: Some("arn:aws:iam::222222222222:role/static".into()),
        }
    }

    fn body(v: serde_json::Value) -> Vec<u8> {
        rmp_serde::to_vec(&v).unwrap()
    }

    #[test]
    fn choosing_from_a_template() {
        let t = Template::parse("arn:aws:iam::$k['acct']:role/log-writer", NameKind::Role).unwrap();
        let r = routing(RoleSource::Template(t.into()));
        assert!(r.per_record());
        let vars = Vars::default();
        let mut s = String::new();
        let mut choose = |v: serde_json::Value| format!("{:?}", r.choose(None, "t", &body(v), &vars, &mut s));
        assert_eq!(
            choose(serde_json::json!({"k": {"acct": "333333333333"}})),
            "Role(\"arn:aws:iam::333333333333:role/log-writer\")"
        );
        assert!(choose(serde_json::json!({"k": {"acct": "444444444444"}})).contains("NotAllowed"));
        assert!(choose(serde_json::json!({"k": {"acct": "333333333333:role/x"}})).contains("NotARoleArn"));
        assert!(choose(serde_json::json!({"k": {"acct": "3333 33333333"}})).contains("NotARoleArn"));
        assert!(choose(serde_json::json!({"k": {}})).contains("Unresolved"));
        assert_eq!(r.check("arn:aws:iam::222222222222:role/static"), RoleChoice::Own);
    }

    #[test]
    fn choosing_from_a_map() {
        let key = Template::parse("$ns", NameKind::Role).unwrap();
        let r = routing(RoleSource::Map { key: key.into(), path: "/m".into() });
        let map = RoleMap::parse("a arn:aws:iam::333333333333:role/w\nb arn:aws:iam::444444444444:role/w").unwrap();
        let vars = Vars::default();
        let mut s = String::new();
        let c = r.choose(Some(&map), "t", &body(serde_json::json!({"ns": "a"})), &vars, &mut s);
        assert_eq!(c, RoleChoice::Role("arn:aws:iam::333333333333:role/w"));
        let c = r.choose(Some(&map), "t", &body(serde_json::json!({"ns": "b"})), &vars, &mut s);
        assert_eq!(c, RoleChoice::Denied { role: "arn:aws:iam::444444444444:role/w", why: Denial::NotAllowed });
        let c = r.choose(Some(&map), "t", &body(serde_json::json!({"ns": "c"})), &vars, &mut s);
        assert_eq!(c, RoleChoice::Unresolved { what: "c" });
    }

    fn naive_glob(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| naive_glob(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive_glob(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_is_the_naive_definition(p in "[ab*/]{0,8}", t in "[ab/]{0,10}") {
            prop_assert_eq!(glob(&p, &t), naive_glob(p.as_bytes(), t.as_bytes()));
        }

        /// Whatever a record holds, what is assumed is a valid role ARN of an allowed account.
        #[test]
        fn no_value_escapes_the_allow_list(value in ".{0,40}", acct in "[0-9]{12}", tail in "[a-z:/*]{0,6}") {
            let t = Template::parse("arn:aws:iam::$v:role/w", NameKind::Role).unwrap();
            let r = routing(RoleSource::Template(t.into()));
            let vars = Vars::default();
            for v in [value.clone(), format!("{acct}{tail}"), format!("{acct}:role/{value}")] {
                let mut s = String::new();
                if let RoleChoice::Role(role) = r.choose(None, "t", &body(serde_json::json!({"v": v})), &vars, &mut s) {
                    let arn = parse_role_arn(role).unwrap();
                    prop_assert!(["222222222222", "333333333333"].contains(&arn.account));
                    prop_assert_eq!(role, format!("arn:aws:iam::{}:role/w", arn.account));
                }
            }
        }

        #[test]
        fn map_lines_round_trip(entries in prop::collection::hash_map("[a-z0-9-]{1,12}", "[0-9]{12}", 0..20)) {
            let text: String = entries.iter().map(|(k, a)| format!("{k} arn:aws:iam::{a}:role/w\n")).collect();
            let map = RoleMap::parse(&text).unwrap();
            prop_assert_eq!(map.len(), entries.len());
            for (k, a) in &entries {
                let expected = format!("arn:aws:iam::{a}:role/w");
                prop_assert_eq!(map.get(k), Some(expected.as_str()));
            }
        }
    }
}
