//! CloudWatch's rules for log group and log stream names, written once: the length limit, the
//! characters each kind allows, the checks of configured names, and the sanitising of names made
//! from data (templates, tag prefixes), which is never refused: a character CloudWatch forbids
//! becomes `.`, and a long name is cut.

/// CloudWatch's limit for group and stream names.
pub const MAX_NAME_BYTES: usize = 512;

/// Which CloudWatch name; each has its own character rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Group,
    Stream,
    /// A role ARN (`role_arn_template`) or a `role_arn_map` key: values are kept as they are
    /// and the whole result is checked as a role ARN (`core::role`), never sanitised into one.
    Role,
}

/// The longest role ARN (STS's limit); longer is never a valid ARN, so a cut one is refused.
const MAX_ROLE_TEXT_BYTES: usize = 2048;

impl NameKind {
    /// Whether CloudWatch allows `c` in this kind of name: in a group only `A-Za-z0-9_-/.#`, in
    /// a stream anything but `:` and `*`.
    #[inline]
    pub fn allows(self, c: char) -> bool {
        match self {
            NameKind::Group => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '#'),
            NameKind::Stream => c != ':' && c != '*',
            NameKind::Role => c.is_ascii_alphanumeric() || "+=,.@_-/:".contains(c),
        }
    }

    /// The longest text of this kind a template writes.
    #[inline]
    pub fn max_bytes(self) -> usize {
        match self {
            NameKind::Group | NameKind::Stream => MAX_NAME_BYTES,
            NameKind::Role => MAX_ROLE_TEXT_BYTES,
        }
    }

    /// Whether the Go plugin's group sanitiser keeps this byte: `A-Za-z0-9_-./` (not `#`,
    /// which CloudWatch allows); it replaces every other byte, each byte of a UTF-8 character
    /// alike, with `.`.
    #[inline]
    pub fn go_group_keeps(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
    }

    /// `c`, or `.` in place of a character this kind does not allow.
    #[inline]
    pub fn sanitise(self, c: char) -> char {
        // a role is checked whole afterwards: a forbidden character must make it invalid
        if self == NameKind::Role || self.allows(c) {
            c
        } else {
            '.'
        }
    }

    /// The character rule, for an error about text that breaks it (a template's literal text).
    pub fn rule(self) -> &'static str {
        match self {
            NameKind::Group => "a log group name allows only A-Z a-z 0-9 _ - / . #",
            NameKind::Stream => "a log stream name allows any character except ':' and '*'",
            NameKind::Role => "a role ARN allows only A-Z a-z 0-9 + = , . @ _ - / :",
        }
    }

    /// What a configured name may hold, for the error when it does not.
    fn allowed(self) -> &'static str {
        match self {
            NameKind::Group => "only the characters A-Z a-z 0-9 _ - / . #",
            NameKind::Stream => "any characters except ':' and '*'",
            NameKind::Role => "only the characters A-Z a-z 0-9 + = , . @ _ - / :",
        }
    }
}

/// A log group name as CloudWatch accepts it: 1–512 of `A-Za-z0-9_-/.#`, not starting `aws/`.
pub fn check_group_name(name: &str) -> Result<(), &'static str> {
    check(name, NameKind::Group)?;
    if name.starts_with("aws/") {
        return Err("a name that does not start with 'aws/'");
    }
    Ok(())
}

/// A log stream name (or prefix): up to 512 bytes without `:` or `*`.
pub fn check_stream_name(name: &str) -> Result<(), &'static str> {
    check(name, NameKind::Stream)
}

/// The length and character rules; `Err` holds what is allowed.
fn check(name: &str, kind: NameKind) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err("1 to 512 characters");
    }
    if !name.chars().all(|c| kind.allows(c)) {
        return Err(kind.allowed());
    }
    Ok(())
}

/// Cuts `name` to at most `max` bytes, on a character boundary.
pub fn cut_to(name: &mut String, max: usize) {
    if name.len() > max {
        let mut cut = max;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
