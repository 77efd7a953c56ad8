//! Plain `http://` URLs (a metadata service, a `credentials_endpoint`), split for one GET.

/// `http://host[:port]/path` → (`host:port`, `host`, `/path`).
pub fn split_http_url(url: &str) -> Option<(String, &str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    let addr = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    Some((addr, authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_http_url("http://127.0.0.1:51678/v4/x"),
            Some(("127.0.0.1:51678".into(), "127.0.0.1:51678", "/v4/x"))
        );
        assert_eq!(split_http_url("http://169.254.170.2"), Some(("169.254.170.2:80".into(), "169.254.170.2", "/")));
        assert_eq!(split_http_url("https://x/"), None);
    }
}
