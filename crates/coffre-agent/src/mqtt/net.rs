//! The TCP socket under TLS: connect with a timeout, `TCP_NODELAY`, and
//! `TCP_QUICKACK` re-armed after each read on Linux.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A TCP stream that keeps quick ACK mode on.
///
/// Linux leaves quick ACK mode by itself (it is "not permanent"), so the
/// flag is set again after every read: an ACK that is pending when the
/// flag is set goes out at once.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) tcp: TcpStream,
    quickack: bool,
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream, quickack: bool) -> io::Result<Socket> {
        tcp.set_nodelay(true)?;
        let s = Socket { tcp, quickack };
        s.arm_quickack();
        Ok(s)
    }

    #[cfg(target_os = "linux")]
    fn arm_quickack(&self) {
        if self.quickack {
            // Best effort: a failure only costs latency.
            let _ = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true);
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn arm_quickack(&self) {
        let _ = self.quickack;
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.tcp.read(buf);
        self.arm_quickack();
        r
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Open a TCP connection to the first address of `host:port` that answers
/// within `timeout`.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("'{host}' resolves to no address"),
    );
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}
