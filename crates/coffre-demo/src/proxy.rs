//! A man in the middle on loopback: a TCP proxy between a device and the
//! broker that records every byte (what a network sniffer captures) and can
//! flip one byte of the first TLS application-data record the client sends
//! (what an attacker tampering with the stream does).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to the client → broker stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Forward unchanged.
    None,
    /// Flip one bit in the payload of the first TLS application-data record
    /// (content type 23) the client sends, on the first connection only.
    FlipFirstAppDataByte,
}

/// Bytes seen by the proxy, per direction.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    /// Client → broker.
    pub to_broker: Vec<u8>,
    /// Broker → client.
    pub to_client: Vec<u8>,
    /// Whether a byte was flipped.
    pub flipped: bool,
}

impl Capture {
    /// True if `needle` appears in either direction.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && (self.to_broker.windows(needle.len()).any(|w| w == needle)
                || self.to_client.windows(needle.len()).any(|w| w == needle))
    }

    /// TLS record content types seen client → broker, in order.
    pub fn client_record_types(&self) -> Vec<u8> {
        record_types(&self.to_broker)
    }
}

fn record_types(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = u16::from_be_bytes([b[3], b[4]]) as usize;
        out.push(b[0]);
        if b.len() < 5 + len {
            break;
        }
        b = &b[5 + len..];
    }
    out
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listen on 127.0.0.1 (a free port) and forward to `upstream`.
    pub fn start(upstream: SocketAddr, tamper: Tamper) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let capture = Arc::new(Mutex::new(Capture::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let capture = capture.clone();
            let stop = stop.clone();
            std::thread::spawn(move || accept_loop(listener, upstream, tamper, capture, stop))
        };
        Ok(Proxy {
            addr,
            capture,
            stop,
            thread: Some(thread),
        })
    }

    /// The address devices should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What was captured so far.
    pub fn capture(&self) -> Capture {
        self.capture.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    tamper: Tamper,
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
) {
    let mut pumps = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let cap = capture.clone();
                let st = stop.clone();
                pumps.push(std::thread::spawn(move || {
                    pump(client, server, tamper, true, cap, st)
                }));
                let cap = capture.clone();
                let st = stop.clone();
                pumps.push(std::thread::spawn(move || {
                    pump(s2, c2, Tamper::None, false, cap, st)
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break,
        }
    }
    for p in pumps {
        let _ = p.join();
    }
}

/// Copy `from` → `to`, recording bytes, tampering with TLS records when asked.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    tamper: Tamper,
    client_side: bool,
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 16 * 1024];
    // Record reassembly state for tampering: bytes of the stream so far.
    let mut stream: Vec<u8> = Vec::new();
    let mut flipped = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let chunk = &mut buf[..n];
        let start = stream.len();
        stream.extend_from_slice(chunk);
        // One flip per proxy: the first connection is tampered with, a
        // reconnection goes through untouched.
        let already = capture.lock().map(|c| c.flipped).unwrap_or(true);
        if tamper == Tamper::FlipFirstAppDataByte && !flipped && !already {
            if let Some(at) = first_app_data_payload(&stream) {
                if at >= start && at < start + n {
                    chunk[at - start] ^= 0x01;
                    flipped = true;
                }
            }
        }
        if let Ok(mut c) = capture.lock() {
            if client_side {
                c.to_broker.extend_from_slice(chunk);
                c.flipped |= flipped;
            } else {
                c.to_client.extend_from_slice(chunk);
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Offset (in the stream) of a byte in the middle of the first
/// application-data record's payload, once the record header is known.
fn first_app_data_payload(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at + 5 <= b.len() {
        let len = u16::from_be_bytes([b[at + 3], b[at + 4]]) as usize;
        if b[at] == 23 && len > 0 {
            return Some(at + 5 + len / 2);
        }
        at += 5 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_application_data_record() {
        // handshake record (22) of 3 bytes, then app data (23) of 8 bytes.
        let mut s = vec![22, 3, 3, 0, 3, 1, 2, 3];
        s.extend([23, 3, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(first_app_data_payload(&s), Some(8 + 5 + 4));
        assert_eq!(record_types(&s), vec![22, 23]);
        assert_eq!(first_app_data_payload(&s[..8]), None);
    }

    #[test]
    fn proxies_and_captures_and_flips() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = upstream.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut got = vec![0u8; 13];
            s.read_exact(&mut got).unwrap();
            s.write_all(b"pong").unwrap();
            got
        });
        let p = Proxy::start(up, Tamper::FlipFirstAppDataByte).unwrap();
        let mut c = TcpStream::connect(p.addr()).unwrap();
        c.write_all(&[23, 3, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        let mut r = [0u8; 4];
        c.read_exact(&mut r).unwrap();
        assert_eq!(&r, b"pong");
        let got = echo.join().unwrap();
        assert_eq!(got[9], 0x01, "one bit flipped in the payload");
        let cap = p.capture();
        assert!(cap.flipped && cap.contains(b"pong"));
    }
}
