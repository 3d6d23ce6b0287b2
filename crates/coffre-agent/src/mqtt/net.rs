//! The IO under the MQTT session: a TCP socket (`TCP_NODELAY`, and
//! `TCP_QUICKACK` re-armed after each read on Linux) under rustls, as a
//! [`coffre_device::Link`]. No MQTT here, no session state.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use coffre_device::{Link, Recv};
use rustls::{ClientConnection, StreamOwned};

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
    /// `TCP_NODELAY`, quick ACK when asked, and writes that give up after
    /// `write_timeout` (a broker that stopped reading).
    pub(crate) fn new(
        tcp: TcpStream,
        quickack: bool,
        write_timeout: Duration,
    ) -> io::Result<Socket> {
        tcp.set_write_timeout(Some(write_timeout.max(Duration::from_millis(1))))?;
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

    /// rustls hands over every record it has ready at once: one `sendmsg`
    /// for a whole flight (the client's certificate, key exchange,
    /// signature and Finished), not one segment per record.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.tcp.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Open a TCP connection to the first address of `host:port` that answers
/// within `timeout`, from `bind` when given.
pub(crate) fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    bind: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("'{host}' resolves to no address"),
    );
    for addr in addrs {
        let r = match bind {
            None => TcpStream::connect_timeout(&addr, timeout),
            Some(ip) => connect_from(ip, addr, timeout),
        };
        match r {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connect to `addr` from `ip` (an ephemeral port of that address).
fn connect_from(ip: IpAddr, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket as RawSocket, Type};
    let s = RawSocket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub(crate) fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The rustls error inside an IO error, if that is what it is.
pub(crate) fn tls_error_of(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A rustls client stream over a [`Socket`]: the Linux [`Link`].
#[derive(Debug)]
pub(crate) struct TlsLink {
    pub(crate) stream: StreamOwned<ClientConnection, Socket>,
}

/// How a handshake failed: the IO error, and the TLS alert the broker sent
/// before it closed, when one could still be read.
pub(crate) struct HandshakeFailure {
    pub(crate) error: io::Error,
    pub(crate) alert: Option<rustls::Error>,
}

impl TlsLink {
    /// Run the TLS handshake over `sock` until it completes, fails, or
    /// `budget` passes (each read waits at most what is left). The
    /// client's last flight may still be in rustls: the first send or
    /// read writes it.
    pub(crate) fn handshake(
        sock: Socket,
        conn: ClientConnection,
        budget: Duration,
        elapsed: impl Fn() -> Duration,
    ) -> Result<TlsLink, HandshakeFailure> {
        let fail = |error| HandshakeFailure { error, alert: None };
        let mut link = TlsLink {
            stream: StreamOwned::new(conn, sock),
        };
        while link.stream.conn.is_handshaking() {
            let left = budget.saturating_sub(elapsed());
            if left.is_zero() {
                return Err(fail(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake",
                )));
            }
            let _ = link.stream.sock.tcp.set_read_timeout(Some(left));
            if let Err(e) = link.handshake_step() {
                let alert = if tls_error_of(&e).is_none() && is_closed(&e) {
                    link.salvage_alert()
                } else {
                    None
                };
                return Err(HandshakeFailure { error: e, alert });
            }
        }
        Ok(link)
    }

    /// One step of the handshake: write what rustls has to send, read
    /// once, process. Unlike rustls's `complete_io`, the flight rustls
    /// queues as the handshake completes (TLS 1.3: the client's
    /// certificate, signature and Finished) is left for the first
    /// [`Link::send`], so that it leaves in one `writev` with the CONNECT.
    fn handshake_step(&mut self) -> io::Result<()> {
        let (conn, sock) = (&mut self.stream.conn, &mut self.stream.sock);
        while conn.wants_write() {
            if conn.write_tls(sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        if conn.read_tls(sock)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(e) = conn.process_new_packets() {
            // The alert that says why, when rustls has one to send.
            let _ = conn.write_tls(sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(())
    }

    /// After the broker closed the socket: read what it sent before
    /// closing. A broker that refuses the device sends an alert, then
    /// closes; the alert may still wait in the receive queue.
    pub(crate) fn salvage_alert(&mut self) -> Option<rustls::Error> {
        let (conn, sock) = (&mut self.stream.conn, &mut self.stream.sock);
        let _ = sock.tcp.set_read_timeout(Some(Duration::from_millis(200)));
        for _ in 0..64 {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        return Some(e);
                    }
                }
            }
        }
        None
    }
}

impl Link for TlsLink {
    type Error = io::Error;

    /// The bytes are encrypted behind whatever rustls still holds — right
    /// after a TLS 1.3 handshake, the client's last flight (see
    /// [`TlsLink::handshake`]) — and everything goes out in one `writev`.
    /// Written one after the other, the broker, woken by the Finished,
    /// can take the CPU before the CONNECT is written (measured: up to
    /// 1 ms on this project's 2-core machine).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (conn, sock) = (&mut self.stream.conn, &mut self.stream.sock);
        let mut rest = bytes;
        loop {
            // rustls takes what its send buffer has room for (64 KiB).
            let n = conn.writer().write(rest)?;
            rest = &rest[n..];
            while conn.wants_write() {
                if conn.write_tls(sock)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
            if rest.is_empty() {
                return sock.flush();
            }
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8], timeout_ms: u64) -> io::Result<Recv> {
        self.stream
            .sock
            .tcp
            .set_read_timeout(Some(Duration::from_millis(timeout_ms.max(1))))?;
        match self.stream.read(buf) {
            Ok(0) => Ok(Recv::Closed),
            Ok(n) => Ok(Recv::Data(n)),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                Ok(Recv::TimedOut)
            }
            Err(e) => Err(e),
        }
    }

    /// TLS `close_notify`, TCP half-close (FIN after the last byte), then
    /// close. Nothing is waited for: the broker has all it needs (the MQTT
    /// DISCONNECT came first), as `mosquitto_pub` does. What the broker
    /// already sent is read first, so that in the usual case the socket
    /// closes with FIN; anything arriving after the close gets a reset,
    /// which the broker sees after the DISCONNECT.
    fn close(&mut self) -> io::Result<()> {
        self.stream.conn.send_close_notify();
        let mut flushed = Ok(());
        while self.stream.conn.wants_write() {
            if let Err(e) = self.stream.conn.write_tls(&mut self.stream.sock) {
                flushed = Err(e);
                break;
            }
        }
        let tcp = &mut self.stream.sock.tcp;
        let _ = tcp.shutdown(Shutdown::Write);
        if tcp.set_nonblocking(true).is_ok() {
            let mut sink = [0u8; 1024];
            while let Ok(1..) = tcp.read(&mut sink) {}
        }
        let _ = tcp.shutdown(Shutdown::Both);
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A CA, a server certificate for 127.0.0.1 and a client certificate
    /// with its PKCS#8 key, as PEM (certificates) and DER (key).
    fn certificates() -> (String, String, Vec<u8>, String, Vec<u8>) {
        use rcgen::{
            BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
        };
        let key = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let (ca_key, server_key, client_key) = (key(), key(), key());
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::from_params(&ca, &ca_key);
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        (
            ca_pem,
            server.pem(),
            server_key.serialize_der(),
            client.pem(),
            client_key.serialize_der(),
        )
    }

    /// A rustls server that asks for a client certificate, completes the
    /// handshake and returns the first `n` bytes of application data.
    fn server(
        l: std::net::TcpListener,
        ca: &str,
        cert: &str,
        key: Vec<u8>,
        n: usize,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let cas = crate::tls::parse_certificates(ca.as_bytes(), "CA").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cas[0].clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let chain = crate::tls::parse_certificates(cert.as_bytes(), "server").unwrap();
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .unwrap();
        std::thread::spawn(move || {
            let (tcp, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = StreamOwned::new(conn, tcp);
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).unwrap();
            got
        })
    }

    /// TLS 1.3: the handshake leaves the client's last flight (certificate,
    /// signature, Finished) in rustls, and the first send writes it with
    /// the data; TLS 1.2 has nothing left (the server's Finished comes
    /// last). Either way the server gets the data.
    #[test]
    fn the_last_flight_leaves_with_the_first_send() {
        let (ca, server_cert, server_key, client_cert, client_key) = certificates();
        for tls13 in [true, false] {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let srv = server(l, &ca, &server_cert, server_key.clone(), 5);
            let key = crate::identity::KeySource::lab_from_pkcs8(&client_key).unwrap();
            let opts = crate::tls::TlsOptions {
                tls13,
                ..Default::default()
            };
            let config =
                crate::tls::client_config(ca.as_bytes(), client_cert.as_bytes(), key, &opts)
                    .unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let conn = ClientConnection::new(config, name).unwrap();
            let tcp = connect("127.0.0.1", addr.port(), Duration::from_secs(5), None).unwrap();
            let sock = Socket::new(tcp, true, Duration::from_secs(5)).unwrap();
            let t0 = std::time::Instant::now();
            let Ok(mut link) =
                TlsLink::handshake(sock, conn, Duration::from_secs(10), || t0.elapsed())
            else {
                panic!("handshake failed (TLS 1.3: {tls13})");
            };
            assert_eq!(link.stream.conn.wants_write(), tls13, "TLS 1.3: {tls13}");
            link.send(b"hello").unwrap();
            assert!(!link.stream.conn.wants_write());
            assert_eq!(srv.join().unwrap(), b"hello");
            link.close().unwrap();
        }
    }

    #[test]
    fn a_connection_comes_from_the_source_address_asked() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let src: IpAddr = [127, 0, 0, 7].into();
        let c = connect("127.0.0.1", port, Duration::from_secs(5), Some(src)).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), src);
        assert_eq!(c.local_addr().unwrap().ip(), src);
        // Without: the system's choice.
        let _c = connect("127.0.0.1", port, Duration::from_secs(5), None).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 1]));
    }
}
