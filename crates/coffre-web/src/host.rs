//! Who may talk to the explorer: the `Host` a request names and, for the
//! API, the site a browser says it comes from.
//!
//! The page shows what chips serve in clear — a lab key among them — so a
//! page on another site must not read it. DNS rebinding points a name the
//! attacker owns at 127.0.0.1: the browser then sends `Host: evil.example`,
//! which is refused here; only the addresses the explorer listens on,
//! `localhost` on a loopback or wildcard listener, and the names allowed
//! explicitly are accepted. A cross-origin `fetch` carries an `Origin` (and
//! `Sec-Fetch-Site: cross-site`): the API refuses those too.

use std::net::{IpAddr, SocketAddr};

/// The host names and addresses the explorer answers to.
#[derive(Debug, Clone)]
pub(crate) struct HostPolicy {
    /// The address the server listens on, when known.
    listen: Option<IpAddr>,
    /// Names allowed on top (`--allow-host`), lowercase.
    names: Vec<String>,
}

/// The host part of a `Host` header or an origin's authority: no port,
/// no brackets, lowercase. `None` if malformed.
fn host_part(authority: &str) -> Option<String> {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        h
    } else {
        match a.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            Some(_) => return None,
            None => a,
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

impl HostPolicy {
    pub(crate) fn new(listen: Option<SocketAddr>, extra: &[String]) -> HostPolicy {
        HostPolicy {
            listen: listen.map(|a| a.ip()),
            names: extra.iter().filter_map(|n| host_part(n)).collect(),
        }
    }

    /// Whether `authority` (a `Host` value, or an origin without its
    /// scheme) names this server.
    pub(crate) fn allows(&self, authority: &str) -> bool {
        let Some(host) = host_part(authority) else {
            return false;
        };
        if self.names.contains(&host) {
            return true;
        }
        let loopback_or_any = match self.listen {
            None => true,
            Some(ip) => ip.is_loopback() || ip.is_unspecified(),
        };
        if host == "localhost" {
            return loopback_or_any;
        }
        // An address cannot be rebound: only names can.
        match host.parse::<IpAddr>() {
            Ok(ip) => match self.listen {
                Some(l) if l.is_unspecified() => true,
                Some(l) => ip == l || (ip.is_loopback() && l.is_loopback()),
                None => ip.is_loopback(),
            },
            Err(_) => false,
        }
    }

    /// Why a request with these headers may not use the API, if it may not:
    /// a browser request from another site.
    pub(crate) fn cross_origin(
        &self,
        origin: Option<&str>,
        fetch_site: Option<&str>,
    ) -> Option<String> {
        if let Some(site) = fetch_site {
            if !matches!(site.trim(), "same-origin" | "none") {
                return Some(format!(
                    "cross-origin request refused (Sec-Fetch-Site: {site}): the API answers the explorer's own page only"
                ));
            }
        }
        if let Some(origin) = origin {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if !authority.is_some_and(|a| self.allows(a)) {
                return Some(format!(
                    "cross-origin request refused (Origin: {origin}): the API answers the explorer's own page only"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let p = HostPolicy::new(
            Some("127.0.0.1:8080".parse().unwrap()),
            &["Lab.Example".into()],
        );
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "lab.example:1",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "",
            ":8080",
            "127.0.0.1.evil.example",
            "192.168.1.2",
            "a b",
            "x:y",
            "[::1]x",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        let any = HostPolicy::new(Some("0.0.0.0:80".parse().unwrap()), &[]);
        assert!(
            any.allows("192.168.1.2:80") && any.allows("localhost") && !any.allows("evil.example")
        );
        let lan = HostPolicy::new(Some("192.168.1.2:80".parse().unwrap()), &[]);
        assert!(lan.allows("192.168.1.2") && !lan.allows("localhost") && !lan.allows("127.0.0.1"));
    }

    #[test]
    fn origins() {
        let p = HostPolicy::new(Some("127.0.0.1:8080".parse().unwrap()), &[]);
        assert!(p
            .cross_origin(Some("http://127.0.0.1:8080"), Some("same-origin"))
            .is_none());
        assert!(p.cross_origin(None, None).is_none());
        assert!(p.cross_origin(Some("http://evil.example"), None).is_some());
        assert!(p.cross_origin(Some("null"), None).is_some());
        assert!(p.cross_origin(None, Some("cross-site")).is_some());
    }
}
