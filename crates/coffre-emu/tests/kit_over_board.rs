//! A kit-protocol session over TCP against the real emulated chip (not a
//! fake target): discovery, select, wake, Info, Sign, idle, sleep.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use coffre_emu::board::{Board, BoardKit};
use coffre_emu::clock::Timing;
use coffre_emu::kit::{serve, KitTarget};
use coffre_emu::presets::Preset;
use coffre_proto::command::{self, MessageSource, NonceTarget};
use coffre_proto::packet::{parse_response, MAX_PACKET};

fn hex(b: &[u8]) -> String {
    coffre_proto::hex::Hex::upper(b).to_string()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn kit_session_drives_the_emulated_chip() {
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let target: Arc<Mutex<dyn KitTarget>> = Arc::new(Mutex::new(BoardKit::new(board.clone())));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(listener, target, stop))
    };

    {
        let stream = TcpStream::connect(addr).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut ask = |line: &str| -> String {
            writer.write_all(format!("{line}\n").as_bytes()).unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            reply.trim_end().to_string()
        };
        assert_eq!(ask("board:device(00)"), "ECC608 TWI 00(6A)");
        assert_eq!(ask("E:physical:select(6A)"), "00()");
        assert_eq!(ask("E:w()"), "00(04113343)");
        assert_eq!(ask("E:t(0730000000035D)"), "00(070000600383BB)");

        let talk = |ask: &mut dyn FnMut(&str) -> String, cmd: coffre_proto::packet::Command| {
            let mut b = [0u8; MAX_PACKET];
            let n = cmd.encode_body(&mut b).unwrap();
            let reply = ask(&format!("E:t({})", hex(&b[..n])));
            let inner = reply
                .strip_prefix("00(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap();
            unhex(inner)
        };
        // The kit idles after each talk, so the digest survives until Sign.
        let pk = talk(&mut ask, command::genkey_public(0));
        assert_eq!(parse_response(&pk).unwrap().len(), 64);
        let r = talk(
            &mut ask,
            command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[9; 32]).unwrap(),
        );
        assert_eq!(r, [0x04, 0x00, 0x03, 0x40]);
        let sig = talk(
            &mut ask,
            command::sign_external(0, MessageSource::MsgDigestBuffer),
        );
        assert_eq!(parse_response(&sig).unwrap().len(), 64);
        // A chip error travels inside the packet.
        let r = talk(&mut ask, command::genkey_create(0));
        assert_eq!(r, [0x04, 0x0F, 0x23, 0x42]);
        // The chip is idle after a talk: idle and sleep need a wake first, as
        // on a real kit (the chip ignores the bus while idle).
        assert_eq!(ask("E:i()"), "F0()");
        assert_eq!(ask("E:w()"), "00(04113343)");
        assert_eq!(ask("E:i()"), "00()");
        assert_eq!(ask("E:w()"), "00(04113343)");
        assert_eq!(ask("E:s()"), "00()");
        assert_eq!(ask("E:nonsense()"), "E2()");
        assert!(board.with_chip(|c| c.stats().commands) >= 5);
    }
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap();
}
