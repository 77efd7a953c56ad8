//! Secrets out of text a server sent, before any of it reaches a log line.
//!
//! Servers echo what they were sent or what they hold: an STS or CloudWatch error repeating the
//! request, a `credentials_endpoint` answering 500 with the credentials JSON in its body, a
//! `credential_process` printing its own input. `redact` replaces, with `[redacted]`:
//!
//! 1. the value of a secret-bearing name, the name compared case-insensitively as a whole word
//!    (`SecretAccessKey`, `secret_access_key`, `SessionToken`, `session_token`, `SecurityToken`,
//!    `security-token`, `Token`; so `aws_secret_access_key` and `X-Amz-Security-Token` too, but
//!    not `NextToken` or `sequenceToken`), in every shape it is written in:
//!    - JSON and its look-alikes: `"Token": "v"`, `'Token':'v'`, `\"Token\":\"v\"` (JSON inside a
//!      JSON string), `Token: v`; a quoted value ends at its closing quote (or the line's end),
//!      an unquoted one at white space or one of `,;&<>{}[]()|` and quotes (after a colon, an
//!      unquoted value of lower-case letters only is prose, `token: expired`, and stays);
//!    - XML: `<SecretAccessKey>v</SecretAccessKey>` (attributes allowed), up to the next `<`;
//!    - form, query and header: `SecretAccessKey=v`, `X-Amz-Security-Token=v&…`;
//! 2. anything shaped like a secret key or a session token: a run of at least
//!    `KEY_SHAPED_RUN` (40) characters of the base64 alphabet `[A-Za-z0-9/+=]` — a `/`, `+` or
//!    `=` also counted when escaped as `\/`, `%2F`, `%2B`, `%3D`, `\u002F`, `\u002B`, `\u003D` —
//!    holding both an upper-case and a lower-case letter. The whole run goes, so a secret inside
//!    a longer run goes with it. AWS secret keys are 40 such characters and session tokens
//!    hundreds; access key ids (`AKIA…`, `ASIA…`, 20 characters) are not secret and stay, and so
//!    do hex digests, request ids and ARNs (their `:` and `-` break the run).
//!
//! Rule 2 would also take a long mixed-case path with no other separator than `/` (a log group
//! such as `/aws/lambda/SomeVeryLongFunctionNameOfForty`) out of a server's message; losing a
//! name from an error message is the price of never printing a secret.

use std::borrow::Cow;

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// The shortest run of base64 characters taken for a secret: an AWS secret access key's length.
pub const KEY_SHAPED_RUN: usize = 40;

/// Names whose value is secret, lower case; the longest first, so `session_token` wins over
/// `token`.
const SECRET_NAMES: &[&str] = &[
    "secret_access_key",
    "secretaccesskey",
    "security-token",
    "security_token",
    "securitytoken",
    "session_token",
    "sessiontoken",
    "token",
];

/// `text` with every secret (see the module's rules) replaced by `[redacted]`. Key-shaped runs
/// go first, so a run that happens to hold a name (`…/token=…`) goes whole, not in part.
pub fn redact(text: &str) -> Cow<'_, str> {
    match redact_key_shaped(text) {
        Cow::Borrowed(t) => redact_named(t),
        Cow::Owned(t) => Cow::Owned(redact_named(&t).into_owned()),
    }
}

/// Rule 1 alone: the values of secret-bearing names. It never touches other text, so it is
/// safe on any line (the log sink applies it to every line as a second net). A name inside
/// another name's value is found too (the ranges are joined), so one value cannot hide the
/// next name from the scan.
pub fn redact_named(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let Some(name_len) = secret_name_at(b, i) else {
            i += 1;
            continue;
        };
        if let Some((start, end)) = value_after(b, i, i + name_len).filter(|(start, end)| end > start) {
            match ranges.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => ranges.push((start, end)),
            }
        }
        i += name_len;
    }
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in ranges {
        // every boundary found is at an ASCII byte, so these are char boundaries
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The length of the secret-bearing name starting at `i`, if a whole word starts there (and is
/// not a closing XML tag, whose "value" would be the text after it).
fn secret_name_at(b: &[u8], i: usize) -> Option<usize> {
    if !b[i].is_ascii_alphabetic() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
        return None;
    }
    if i >= 2 && b[i - 1] == b'/' && b[i - 2] == b'<' {
        return None;
    }
    SECRET_NAMES.iter().map(|name| name.as_bytes()).find_map(|name| {
        let n = name.len();
        let whole_word = b.len() >= i + n
            && b[i..i + n].eq_ignore_ascii_case(name)
            && !b.get(i + n).is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        whole_word.then_some(n)
    })
}

/// The byte range of the value written after the name at `name_start..j`, if a separator
/// follows the name.
fn value_after(b: &[u8], name_start: usize, mut j: usize) -> Option<(usize, usize)> {
    let at = |k: usize| b.get(k).copied();
    if name_start > 0 && b[name_start - 1] == b'<' {
        // an XML element: its attributes, then its text up to the next tag
        while at(j).is_some_and(|c| c != b'>' && c != b'<' && c != b'\n') {
            j += 1;
        }
        if at(j) != Some(b'>') {
            return None;
        }
        let start = j + 1;
        let end = start + b[start..].iter().position(|&c| c == b'<').unwrap_or(b.len() - start);
        return Some((start, end));
    }
    // the name's own closing quote, possibly escaped
    while at(j).is_some_and(|c| matches!(c, b'"' | b'\'' | b'`' | b'\\')) {
        j += 1;
    }
    while at(j).is_some_and(|c| c == b' ' || c == b'\t') {
        j += 1;
    }
    let sep = at(j)?;
    if sep != b':' && sep != b'=' {
        return None;
    }
    j += 1;
    while at(j).is_some_and(|c| c.is_ascii_whitespace()) {
        j += 1;
    }
    let mut open = j;
    while at(open) == Some(b'\\') {
        open += 1;
    }
    if let Some(quote @ (b'"' | b'\'' | b'`')) = at(open) {
        let start = open + 1;
        let mut end = start + b[start..].iter().position(|&c| c == quote || c == b'\n').unwrap_or(b.len() - start);
        // the closing quote's escape belongs to the quote, not to the value
        while end > start && b[end - 1] == b'\\' {
            end -= 1;
        }
        return Some((start, end));
    }
    let mut end = j;
    while let Some(c) = at(end) {
        let stops = c.is_ascii_whitespace()
            || matches!(c, b',' | b';' | b'&' | b'<' | b'>' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'|')
            || matches!(c, b'"' | b'\'' | b'`')
            || (c == b'\\' && at(end + 1) != Some(b'/'));
        if stops {
            break;
        }
        end += 1;
    }
    // `token: expired` in prose: after a colon, one plain lower-case word is no secret
    if sep == b':' && b[j..end].iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    Some((j, end))
}

/// Rule 2 alone: runs shaped like a secret key or a session token.
pub fn redact_key_shaped(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if key_unit_at(b, i) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let (mut units, mut upper, mut lower) = (0usize, false, false);
        while i < b.len() {
            let unit = key_unit_at(b, i);
            if unit == 0 {
                break;
            }
            if unit == 1 {
                upper |= b[i].is_ascii_uppercase();
                lower |= b[i].is_ascii_lowercase();
            }
            units += 1;
            i += unit;
        }
        if units >= KEY_SHAPED_RUN && upper && lower {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = i;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Escaped forms of `/`, `+` and `=` that still belong to a run, lower case.
const ESCAPED_UNITS: &[&str] = &["\\/", "%2f", "%2b", "%3d", "\\u002f", "\\u002b", "\\u003d"];

/// The byte length of the base64 character (or escaped `/`, `+`, `=`) at `i`; 0 for none.
fn key_unit_at(b: &[u8], i: usize) -> usize {
    let c = b[i];
    if c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+' | b'=') {
        return 1;
    }
    if c != b'\\' && c != b'%' {
        return 0;
    }
    ESCAPED_UNITS
        .iter()
        .find(|u| b.len() >= i + u.len() && b[i..i + u.len()].eq_ignore_ascii_case(u.as_bytes()))
        .map_or(0, |u| u.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn clean(text: &str) -> String {
        redact(text).into_owned()
    }

    #[test]
    fn json_values_of_secret_names_in_any_quoting_and_spacing() {
        for text in [
            r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Token":"tok","Expiration":"x"}"#,
            r#"{ "secretaccesskey" :   "s3cr3t" , "TOKEN":"tok" }"#,
            r#"{'SecretAccessKey': 's3cr3t', 'SessionToken': 'tok'}"#,
            r#"error: "{\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"tok\"}""#,
            "SecretAccessKey: s3cr3t\nToken: tok",
            "aws_secret_access_key = s3cr3t\naws_session_token=tok",
        ] {
            let out = clean(text);
            assert!(!out.contains("s3cr3t") && !out.contains("tok\"") && !out.contains("tok'"), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{out}");
        }
        let out = clean(r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Expiration":"2030"}"#);
        assert_eq!(out, r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"[redacted]","Expiration":"2030"}"#);
    }

    #[test]
    fn xml_elements_and_form_fields() {
        let xml = "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>\
                   <SessionToken>\n  tok\n</SessionToken><Token a=\"1\">tok2</Token></Credentials>";
        let out = clean(xml);
        assert_eq!(
            out,
            "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>[redacted]</SecretAccessKey>\
             <SessionToken>[redacted]</SessionToken><Token a=\"1\">[redacted]</Token></Credentials>"
        );
        let form = "Action=AssumeRole&SecretAccessKey=s3cr3t&X-Amz-Security-Token=tok%2Fx&Version=2011";
        assert_eq!(
            clean(form),
            "Action=AssumeRole&SecretAccessKey=[redacted]&X-Amz-Security-Token=[redacted]&Version=2011"
        );
    }

    #[test]
    fn other_words_and_tokens_stay() {
        for text in [
            "The security token included in the request is invalid.",
            "The given sequenceToken is invalid. The next expected sequenceToken is: 49590302", // not secret
            "NextToken=abc",
            "</Token> after",
            "failed to load IMDS session token: dispatch failure",
            "User: arn:aws:iam::111111111111:user/task is not authorized to perform: sts:AssumeRole",
            "AKIAIOSFODNN7EXAMPLE and ASIAIOSFODNN7EXAMPLE",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709", // a SHA-1 digest: one case only
            "/aws/ecs/containerinsights/cluster/performance", // letters and slashes, one case
        ] {
            assert_eq!(clean(text), text);
        }
    }

    #[test]
    fn key_shaped_runs_go_whole_and_escaped_slashes_do_not_split_them() {
        assert_eq!(clean(&format!("key {SECRET} was refused")), "key [redacted] was refused");
        assert_eq!(clean(&format!("x{SECRET}x")), "[redacted]");
        let escaped = SECRET.replace('/', "\\/");
        assert_eq!(clean(&format!("\"{escaped}\"")), "\"[redacted]\"");
        let url_encoded = SECRET.replace('/', "%2F");
        assert_eq!(clean(&format!("key: {url_encoded}&")), "key: [redacted]&");
        // 39 characters are not a key
        assert_eq!(clean(&SECRET[..39]), &SECRET[..39]);
    }

    /// Text around a planted secret: anything at all, including what looks like other names.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            "[ -~]{0,40}",
            "(\"Token\": \"|<Token>|Token=|SecretAccessKey|[ \\n\\r\\t\"'<>=:&{}\\\\/+a-zA-Z0-9]){0,12}",
        ]
    }

    /// A secret of the base64 alphabet with both cases, `len` long.
    fn secret(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[A-Za-z0-9/+=]{{{},{}}}", len.start, len.end))
            .unwrap()
            .prop_map(|s| format!("Ab{s}"))
    }

    fn name_case(name: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![Just(name.to_string()), Just(name.to_ascii_lowercase()), Just(name.to_ascii_uppercase())]
    }

    /// One of the shapes a secret is written in.
    fn planted() -> impl Strategy<Value = (String, String)> {
        let json_name = prop_oneof![name_case("SecretAccessKey"), name_case("Token"), name_case("SessionToken")];
        let json = (json_name, secret(14..60), "[\"'`]", " {0,3}", " {0,3}", any::<bool>()).prop_map(
            |(name, s, q, sp1, sp2, escaped)| {
                let q = if escaped { format!("\\{q}") } else { q };
                (format!("{q}{name}{q}{sp1}:{sp2}{q}{s}{q}"), s)
            },
        );
        let xml_name = prop_oneof![Just("SecretAccessKey"), Just("SessionToken"), Just("Token")];
        let xml = (xml_name, secret(14..60), "[ \n]{0,2}")
            .prop_map(|(name, s, ws)| (format!("<{name}>{ws}{s}{ws}</{name}>"), s));
        let form = (name_case("SecretAccessKey"), secret(14..60), "[&?]")
            .prop_map(|(name, s, sep)| (format!("{sep}{name}={s}&"), s));
        let bare = secret(38..200).prop_map(|s| (s.clone(), s));
        prop_oneof![json, xml, form, bare]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever surrounds it, a planted secret never survives.
        #[test]
        fn a_planted_secret_never_survives((shape, secret) in planted(), before in any_text(), after in any_text()) {
            let text = format!("{before}{shape}{after}");
            let out = redact(&text);
            prop_assert!(!out.contains(&secret), "{:?} -> {:?}", text, out);
        }

        /// Prose without a secret name or a key-shaped run passes untouched.
        #[test]
        fn prose_is_untouched(text in "[a-z ,.:()'\"-]{0,300}") {
            prop_assume!(!text.contains("token"));
            prop_assert_eq!(redact(&text), text.as_str());
        }
    }
}
