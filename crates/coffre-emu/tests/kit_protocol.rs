//! Kit protocol over a real TCP socket, against a fake chip with canned responses.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use coffre_emu::kit::{serve, KitError, KitSession, KitTarget};

/// CRC-16 of the ATECC608 (poly 0x8005, bits taken LSB first, init 0), low byte first.
fn crc(data: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0;
    for &byte in data {
        for bit in 0..8 {
            let d = (byte >> bit) & 1;
            let c = u8::from(crc & 0x8000 != 0);
            crc <<= 1;
            if d != c {
                crc ^= 0x8005;
            }
        }
    }
    crc.to_le_bytes()
}

#[test]
fn crc_helper_matches_the_info_example() {
    assert_eq!(crc(&INFO_REVISION[..5]), [0x03, 0x5D]);
    assert_eq!(crc(&[0x04, 0x11]), [0x33, 0x43]);
}

fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend_from_slice(&crc(body));
    v
}

const INFO_REVISION: [u8; 7] = [0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D];

/// Log of what the fake chip was asked to do, shared with the test.
type Log = Arc<Mutex<Vec<String>>>;

/// A chip stand-in: answers Info(revision) with a 608B revision, anything
/// else with a parse error status packet, and fails while asleep.
struct FakeChip {
    log: Log,
    asleep: bool,
}

impl FakeChip {
    fn note(&self, what: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push(what);
        }
    }
}

impl KitTarget for FakeChip {
    fn device_name(&self) -> &str {
        "ECC608"
    }
    fn address8(&self) -> u8 {
        0x6A
    }
    fn wake(&mut self) -> Result<Vec<u8>, KitError> {
        self.note("wake".into());
        self.asleep = false;
        Ok(vec![0x04, 0x11, 0x33, 0x43])
    }
    fn idle(&mut self) -> Result<(), KitError> {
        self.note("idle".into());
        Ok(())
    }
    fn sleep(&mut self) -> Result<(), KitError> {
        self.note("sleep".into());
        self.asleep = true;
        Ok(())
    }
    fn transmit(&mut self, packet: &[u8]) -> Result<Vec<u8>, KitError> {
        self.note(format!("transmit {packet:02X?}"));
        if self.asleep {
            return Err(KitError::NoResponse);
        }
        if packet == INFO_REVISION {
            Ok(with_crc(&[0x07, 0x00, 0x00, 0x60, 0x03]))
        } else {
            Ok(with_crc(&[0x04, 0x03]))
        }
    }
}

fn hex(data: &[u8]) -> String {
    coffre_proto::hex::Hex::upper(data).to_string()
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<std::io::Result<()>>>,
    log: Log,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let log: Log = Arc::default();
        let chip: Arc<Mutex<dyn KitTarget>> = Arc::new(Mutex::new(FakeChip {
            log: Arc::clone(&log),
            asleep: true,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = thread::spawn(move || serve(listener, chip, stop2));
        Server {
            addr,
            stop,
            handle: Some(handle),
            log,
        }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("server thread").expect("serve result");
        }
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn read_reply(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line
    }

    fn ask(&mut self, line: &str) -> String {
        self.send_raw(line.as_bytes());
        self.read_reply()
    }
}

#[test]
fn full_session_over_tcp() {
    let server = Server::start();
    let mut c = server.connect();

    // Discovery as kit_init() does it: index 0 has the chip, index 1 nothing.
    assert_eq!(c.ask("board:device(00)\n"), "ECC608 TWI 00(6A)\n");
    assert_eq!(c.ask("board:device(01)\n"), "E0()\n");
    assert!(c.ask("board:version()\n").starts_with("00("));

    // Device commands before select are refused.
    assert_eq!(c.ask("E:w()\n"), "E2()\n");
    assert_eq!(c.ask("E:physical:select(6A)\n"), "00()\n");

    assert_eq!(c.ask("E:w()\n"), "00(04113343)\n");
    let expected = format!("00({})\n", hex(&with_crc(&[0x07, 0x00, 0x00, 0x60, 0x03])));
    assert_eq!(c.ask("E:t(0730000000035D)\n"), expected);
    assert_eq!(c.ask("E:i()\n"), "00()\n");
    assert_eq!(c.ask("E:s()\n"), "00()\n");

    // A chip error status travels inside the packet.
    let parse_error = with_crc(&[0x07, 0x99, 0x00, 0x00, 0x00]);
    let status = format!("00({})\n", hex(&with_crc(&[0x04, 0x03])));
    assert_eq!(c.ask(&format!("e:t({})\n", hex(&parse_error))), status);

    // Bad lines.
    assert_eq!(c.ask("E:t(07300000035D)\n"), "E4()\n");
    assert_eq!(c.ask("E:t(07zz)\n"), "E2()\n");
    assert_eq!(c.ask("nonsense\n"), "E2()\n");

    // An over-long line is answered once, and the session goes on.
    let mut long = vec![b'0'; 600];
    long.push(b'\n');
    c.send_raw(&long);
    assert_eq!(c.read_reply(), "E4()\n");

    // Several requests in one segment, split across writes.
    c.send_raw(b"E:i()\nE:");
    assert_eq!(c.read_reply(), "00()\n");
    c.send_raw(b"s()\n");
    assert_eq!(c.read_reply(), "00()\n");

    drop(c);

    let log = server.log();
    let info = format!("transmit {:02X?}", INFO_REVISION);
    assert_eq!(log[..5], ["wake", "wake", info.as_str(), "idle", "idle"]);
    assert_eq!(log[5], "sleep");

    // A new client starts unselected; the server keeps serving after a disconnect.
    let mut c2 = server.connect();
    assert_eq!(c2.ask("E:w()\n"), "E2()\n");
    assert_eq!(c2.ask("E:select(6A)\n"), "00()\n");
    assert_eq!(c2.ask("E:w()\n"), "00(04113343)\n");
    drop(c2);

    server.shutdown();
}

#[test]
fn stop_returns_with_clients_connected() {
    let server = Server::start();
    let mut c = server.connect();
    assert_eq!(c.ask("board:device(00)\n"), "ECC608 TWI 00(6A)\n");
    // The client stays connected; serve must still return promptly.
    let started = std::time::Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut rest = String::new();
    assert_eq!(c.reader.read_line(&mut rest).unwrap_or(0), 0);
}

#[test]
fn session_is_usable_without_sockets() {
    let log: Log = Arc::default();
    let mut chip = FakeChip {
        log: Arc::clone(&log),
        asleep: false,
    };
    let mut session = KitSession::new();
    assert_eq!(
        session.process_line(b"b:d(0)\n", &mut chip),
        "ECC608 TWI 00(6A)\n"
    );
    assert_eq!(
        session.process_line(b"e:physical:select(6a)", &mut chip),
        "00()\n"
    );
    let reply = session.process_line(b"e:t(0730000000035D)\n", &mut chip);
    assert_eq!(
        reply,
        format!("00({})\n", hex(&with_crc(&[0x07, 0x00, 0x00, 0x60, 0x03])))
    );
}

// Issue 15, item 10: a flood of connections is capped, idle ones are
// closed, and the clients being served keep working.
fn kit_server(opts: coffre_emu::kit::ServeOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let chip: Arc<Mutex<dyn KitTarget>> = Arc::new(Mutex::new(FakeChip {
        log: Arc::clone(&log),
        asleep: true,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let handle = thread::spawn(move || coffre_emu::kit::serve_with(listener, chip, stop2, opts));
    Server {
        addr,
        stop,
        handle: Some(handle),
        log,
    }
}

#[test]
fn connections_over_the_cap_are_refused_and_the_others_served() {
    use coffre_emu::kit::{busy_reply, ServeOptions};
    use std::io::Read;
    let server = kit_server(ServeOptions {
        max_clients: 4,
        idle_timeout: Duration::from_secs(600),
    });
    // Four clients are served (each gets an answer, so each is counted).
    let mut served: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for c in &mut served {
        assert_eq!(c.ask("board:device(00)\n"), "ECC608 TWI 00(6A)\n");
    }
    // A flood of 500 more: each is told why and disconnected.
    let mut flood: Vec<Client> = (0..500).map(|_| server.connect()).collect();
    for c in &mut flood {
        assert_eq!(c.read_reply(), busy_reply(4));
        let mut rest = Vec::new();
        assert_eq!(c.reader.read_to_end(&mut rest).unwrap(), 0);
    }
    // The served clients keep working.
    for c in &mut served {
        assert_eq!(c.ask("board:device(00)\n"), "ECC608 TWI 00(6A)\n");
    }
    // One leaves: its place goes to the next client.
    drop(served.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = server.connect();
        let reply = c.ask("board:device(00)\n");
        if reply == "ECC608 TWI 00(6A)\n" {
            break;
        }
        assert_eq!(reply, busy_reply(4));
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    server.shutdown();
}

#[test]
fn idle_connections_are_closed() {
    use coffre_emu::kit::{ServeOptions, IDLE_REPLY};
    use std::io::Read;
    let server = kit_server(ServeOptions {
        max_clients: 2,
        idle_timeout: Duration::from_millis(300),
    });
    let mut c = server.connect();
    assert_eq!(c.ask("board:device(00)\n"), "ECC608 TWI 00(6A)\n");
    // Silent from now on: the server says why and closes.
    assert_eq!(c.read_reply(), IDLE_REPLY);
    let mut rest = Vec::new();
    assert_eq!(c.reader.read_to_end(&mut rest).unwrap(), 0);
    server.shutdown();
}
