//! The broker's address.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where the broker is: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddr {
    /// Host name or IP address (no brackets around IPv6).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// The MQTT-over-TLS port, used when none is given.
    pub const DEFAULT_PORT: u16 = 8883;

    /// A broker address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        BrokerAddr {
            host: host.into(),
            port,
        }
    }
}

impl FromStr for BrokerAddr {
    type Err = Error;

    /// `host:port`, `host` (port 8883), `[v6]:port` or `[v6]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BrokerAddress(s.to_owned());
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(sa.into());
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
            let port = match tail {
                "" => Self::DEFAULT_PORT,
                t => t
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            return Ok(BrokerAddr::new(host, port));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                Ok(BrokerAddr::new(host, port.parse().map_err(|_| bad())?))
            }
            None if !s.is_empty() => Ok(BrokerAddr::new(s, Self::DEFAULT_PORT)),
            _ => Err(bad()),
        }
    }
}

impl From<SocketAddr> for BrokerAddr {
    fn from(sa: SocketAddr) -> Self {
        BrokerAddr::new(sa.ip().to_string(), sa.port())
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let a: BrokerAddr = "127.0.0.1:1883".parse().unwrap();
        assert_eq!(a, BrokerAddr::new("127.0.0.1", 1883));
        let a: BrokerAddr = "broker.lan".parse().unwrap();
        assert_eq!(a.port, 8883);
        assert_eq!(a.to_string(), "broker.lan:8883");
        let a: BrokerAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(a, BrokerAddr::new("::1", 9000));
        assert_eq!(a.to_string(), "[::1]:9000");
        let a: BrokerAddr = "[::1]".parse().unwrap();
        assert_eq!(a.port, 8883);
        for bad in ["", "host:", "host:port", "[::1", ":80", "a:b:c"] {
            let e = bad.parse::<BrokerAddr>().unwrap_err();
            assert!(e.to_string().contains("host:port"), "{bad}: {e}");
        }
    }
}
