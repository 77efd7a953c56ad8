//! Log group and stream names: validation of the configured ones, and the stream a chunk's
//! tag maps to.

use std::borrow::Cow;

/// CloudWatch's limit for group and stream names.
pub const MAX_NAME_BYTES: usize = 512;

/// Where a chunk's events go inside the log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamName {
    /// `log_stream_name`: always this stream.
    Fixed(String),
    /// `log_stream_prefix`: prefix + the chunk's tag.
    Prefix(String),
}

impl StreamName {
    /// The stream for a chunk with this tag: `:` and `*` (which CloudWatch forbids) become `.`,
    /// and the name is cut to 512 bytes on a character boundary.
    pub fn for_tag<'a>(&'a self, tag: &str) -> Cow<'a, str> {
        match self {
            StreamName::Fixed(name) => Cow::Borrowed(name),
            StreamName::Prefix(prefix) => {
                let mut name = String::with_capacity(prefix.len() + tag.len());
                name.push_str(prefix);
                name.extend(tag.chars().map(|c| if c == ':' || c == '*' { '.' } else { c }));
                cut_to(&mut name, MAX_NAME_BYTES);
                Cow::Owned(name)
            }
        }
    }
}

fn cut_to(name: &mut String, max: usize) {
    if name.len() > max {
        let mut cut = max;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
}

/// A log group name as CloudWatch accepts it: 1–512 of `A-Za-z0-9_-/.#`, not starting `aws/`.
pub fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err("1 to 512 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b)) {
        return Err("only the characters A-Z a-z 0-9 _ - / . #");
    }
    if name.starts_with("aws/") {
        return Err("a name that does not start with 'aws/'");
    }
    Ok(())
}

/// A log stream name (or prefix): up to 512 bytes without `:` or `*`.
pub fn check_stream_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err("1 to 512 characters");
    }
    if name.contains([':', '*']) {
        return Err("any characters except ':' and '*'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_plus_tag_is_sanitised_and_bounded() {
        let s = StreamName::Prefix("example-".into());
        assert_eq!(s.for_tag("app.web"), "example-app.web");
        assert_eq!(s.for_tag("a:b*c"), "example-a.b.c");
        let long = "é".repeat(400);
        let name = s.for_tag(&long);
        assert!(name.len() <= 512 && name.len() >= 511);
        assert_eq!(StreamName::Fixed("x".into()).for_tag("ignored"), "x");
    }

    #[test]
    fn group_and_stream_rules() {
        assert!(check_group_name("cross-account-example").is_ok());
        assert!(check_group_name("/ecs/app#1").is_ok());
        assert!(check_group_name("has space").is_err());
        assert!(check_group_name("aws/x").is_err());
        assert!(check_group_name(&"a".repeat(513)).is_err());
        assert!(check_stream_name("a b").is_ok());
        assert!(check_stream_name("a:b").is_err());
    }
}
