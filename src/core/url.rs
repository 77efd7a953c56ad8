//! Plain `http://` URLs (a metadata service, a `credentials_endpoint`), split for one GET; and
//! where the host of a URL is, as far as its text proves it (cleartext is allowed only where it
//! cannot leave the host).

use std::net::{Ipv4Addr, Ipv6Addr};

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

/// The authority of `scheme://authority[/…]` split into host and port: an IPv6 literal loses its
/// brackets. `None` when there is userinfo (`user@host`: the host a reader sees first is not
/// the one connected to), an empty host, or a port that is not a number.
pub fn split_authority(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (!host.is_empty() && port_ok).then_some((host, port))
}

/// Where a URL's host is, as far as its text proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostReach {
    /// 127.0.0.0/8, `::1`, `localhost` in any case: this host.
    Loopback,
    /// 169.254.170.2, 169.254.170.23, `fd00:ec2::23`: where ECS and EKS Pod Identity serve
    /// container credentials (the addresses the AWS SDKs allow over plain HTTP).
    ContainerCredentials,
    /// Anything else. A name other than `localhost` may resolve anywhere (DNS, /etc/hosts), so
    /// it is never taken for local; nor is an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`):
    /// write the IPv4 address.
    Elsewhere,
}

/// Where `host` (as `split_authority` gives it) is.
pub fn host_reach(host: &str) -> HostReach {
    const CONTAINER_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(169, 254, 170, 2), Ipv4Addr::new(169, 254, 170, 23)];
    const CONTAINER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23);
    if host.eq_ignore_ascii_case("localhost") {
        return HostReach::Loopback;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return match v4 {
            a if a.is_loopback() => HostReach::Loopback,
            a if CONTAINER_V4.contains(&a) => HostReach::ContainerCredentials,
            _ => HostReach::Elsewhere,
        };
    }
    match host.parse::<Ipv6Addr>() {
        Ok(v6) if v6 == Ipv6Addr::LOCALHOST => HostReach::Loopback,
        Ok(v6) if v6 == CONTAINER_V6 => HostReach::ContainerCredentials,
        _ => HostReach::Elsewhere,
    }
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

    #[test]
    fn authorities() {
        assert_eq!(split_authority("http://127.0.0.1:4566/x"), Some(("127.0.0.1", Some("4566"))));
        assert_eq!(split_authority("http://[::1]"), Some(("::1", None)));
        assert_eq!(split_authority("http://[::1]:4566"), Some(("::1", Some("4566"))));
        assert_eq!(
            split_authority("https://logs.us-east-1.amazonaws.com"),
            Some(("logs.us-east-1.amazonaws.com", None))
        );
        assert_eq!(split_authority("http://localhost?x"), Some(("localhost", None)));
        // userinfo: the host a reader sees first is not the one connected to
        assert_eq!(split_authority("http://127.0.0.1@evil.example"), None);
        assert_eq!(split_authority("http://127.0.0.1:80@evil.example/"), None);
        for bad in ["http://", "http://:80", "http://[::1", "http://[::1]x", "http://h:", "http://h:8a", "127.0.0.1"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_loopback_and_the_container_credential_addresses_are_proven_local() {
        use HostReach::*;
        let reach = |url: &str| split_authority(url).map(|(host, _)| host_reach(host));
        for url in [
            "http://127.0.0.1:4566",
            "http://127.1.2.3",
            "http://127.255.255.254:1",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://LocalHost/x",
            "http://[::1]:4566",
            "http://[0:0:0:0:0:0:0:1]",
        ] {
            assert_eq!(reach(url), Some(Loopback), "{url}");
        }
        for url in
            ["http://169.254.170.2/v2/credentials", "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]"]
        {
            assert_eq!(reach(url), Some(ContainerCredentials), "{url}");
        }
        for url in [
            "http://10.0.0.1",
            "http://localstack:4566",
            "http://my-host.local",
            "http://127.0.0.1.nip.io",
            "http://localhost.",
            "http://localhost.example.com",
            "http://foo.localhost",
            "http://127.1",
            "http://0x7f000001",
            "http://0177.0.0.1",
            "http://2130706433",
            "http://0.0.0.0",
            "http://169.254.169.254",
            "http://169.254.170.3",
            "http://[::ffff:127.0.0.1]",
            "http://[::]",
            "http://[fe80::1]",
        ] {
            assert_eq!(reach(url), Some(Elsewhere), "{url}");
        }
    }
}
