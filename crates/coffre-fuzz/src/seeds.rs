//! Seed inputs for every target: well-formed examples the fuzzer mutates
//! (written into `fuzz/corpus/<target>/` by `coffre-fuzz-seed`).

use coffre_emu::image;
use coffre_emu::presets::Preset;
use coffre_proto::command::{self, AccessSize, InfoMode, MessageSource, NonceTarget};
use coffre_proto::packet::{self, Command};
use coffre_proto::zone::Zone;

fn body(c: &Command) -> Vec<u8> {
    let mut b = [0u8; packet::MAX_PACKET];
    let n = c.encode_body(&mut b).expect("fits");
    b[..n].to_vec()
}

fn commands() -> Vec<Command> {
    let mut v = vec![
        command::info(InfoMode::Revision),
        command::read(Zone::Config, AccessSize::Block, 0),
        command::read(Zone::Data, AccessSize::Block, 8 << 3),
        command::read(Zone::Otp, AccessSize::Word, 0),
        command::genkey_public(0),
        command::genkey_create(2),
        command::random(),
        command::nonce_random(&[7; 20], false),
        command::sign_external(0, MessageSource::TempKey),
        command::self_test(0x3B),
        command::sha_start(),
        command::update_extra(false, 0),
    ];
    v.extend(command::nonce_passthrough(
        NonceTarget::TempKey,
        &[0x11; 32],
    ));
    v.extend(command::write(Zone::Data, 8 << 3, &[0x22; 32]));
    v.extend(command::counter_read(0));
    v
}

/// A chip program (see [`crate::chip::transactions`]) running `cmds`:
/// wake, then for each command write it and read its answer.
fn program(preset: u8, cmds: &[Command]) -> Vec<u8> {
    let mut p = vec![preset, 0];
    for c in cmds {
        let d = c.data();
        p.push(1);
        p.push(c.opcode);
        p.push(c.param1);
        p.extend_from_slice(&c.param2.to_le_bytes());
        p.push(d.len() as u8);
        p.extend_from_slice(d);
        p.extend_from_slice(&[4, 95]);
    }
    p
}

fn mqtt_packets() -> Vec<Vec<u8>> {
    vec![
        vec![0, 0x20, 0x03, 0x00, 0x00, 0x00],
        vec![1, 0x20, 0x02, 0x00, 0x00],
        vec![0, 0x90, 0x04, 0x00, 0x01, 0x00, 0x01],
        vec![0, 0x40, 0x03, 0x00, 0x01, 0x00],
        vec![
            0, 0x30, 0x0A, 0x00, 0x08, b'm', b'5', b'g', b'o', b'/', b'e', b'n', b'v',
        ],
        vec![0, 0xD0, 0x00],
        vec![0, 0xE0, 0x01, 0x8E],
    ]
}

/// Seeds of the target `name`.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "proto_response" => {
            let mut v: Vec<Vec<u8>> = [0x00u8, 0x01, 0x03, 0x0F, 0x11, 0xEE, 0xFF]
                .iter()
                .map(|s| packet::status_packet(coffre_proto::Status::from_byte(*s)).to_vec())
                .collect();
            for data in [&[0u8, 0, 0x60, 0x03][..], &[0x5A; 32], &[0xA5; 64]] {
                let mut b = [0u8; 256];
                let n = packet::encode_response(data, &mut b).expect("fits");
                v.push(b[..n].to_vec());
            }
            v
        }
        "proto_command" => commands().iter().map(body).collect(),
        "proto_config" => [Preset::Tngtls, Preset::Blank]
            .iter()
            .map(|p| p.build().config.as_bytes().to_vec())
            .collect(),
        "driver_bus" | "sensors_bus" => {
            // Acknowledged transactions answering a woken chip, then
            // plausible responses.
            let mut awake = vec![0x10, 0x04, 0x11, 0x33, 0x43];
            for _ in 0..8 {
                awake.extend_from_slice(&[0x10, 0x07, 0x00, 0x00, 0x60, 0x03, 0x00, 0x00]);
            }
            vec![awake, vec![0x10; 64], vec![0x00; 16]]
        }
        "emu_chip" => {
            let cmds = commands();
            vec![program(0, &cmds), program(1, &cmds), program(0, &cmds[..3])]
        }
        "emu_image" => [Preset::Tngtls, Preset::Blank]
            .iter()
            .map(|p| image::encode(&p.build()).to_vec())
            .collect(),
        "kit_session" => vec![
            b"\x00b:d(0)\ne:physical:select(6a)\ne:t(0730000000035D)\n".to_vec(),
            b"\x01b:d(0)\ne:physical:select(c0)\ne:w()\ne:t(0730000000035D)\ne:i()\ne:s()\n"
                .to_vec(),
        ],
        "mqtt_codec" => mqtt_packets(),
        "mqtt_session" => {
            // Connect, then the broker's CONNACK, SUBACK and PUBACK.
            let mut v = Vec::new();
            for p in mqtt_packets() {
                let mut s = vec![0u8, 0, p.len() as u8 - 1];
                s.extend_from_slice(&p[1..]);
                s.extend_from_slice(&[4, 5, 3, 0x10, 0x27]);
                v.push(s);
            }
            v
        }
        "atcacert" => {
            let nv = crate::preset(Preset::Tngtls);
            let mut v = Vec::new();
            for (flag, def) in [
                (0u8, &coffre_atcacert::TNGTLS_DEVICE_3),
                (1, &coffre_atcacert::TNGTLS_SIGNER),
            ] {
                let data = coffre_emu::factory::device_data(&nv, def).expect("factory chip");
                let mut seed = vec![flag];
                for loc in def.device_locs() {
                    seed.extend_from_slice(data.get(&loc).expect("every location"));
                }
                v.push(seed);
            }
            v
        }
        "pki_files" => vec![
            b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n".to_vec(),
            vec![0x30, 0x03, 0x02, 0x01, 0x00],
            vec![0x00, 0x03, 0x30, 0x01, 0x00],
        ],
        "queue_files" => vec![
            b"\x021\n{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n".to_vec(),
            b"\x0350\n{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3".to_vec(),
            b"\x00{\"device\":\"m5go\",\"seq\":7,\"ts\":\"2026-12-01T00:00:00Z\"}\n".to_vec(),
        ],
        "web_request" => vec![
            vec![0, 3, 0],
            [
                &[0u8, 4, 0, 3, 9][..],
                b"localhost",
                &[14],
                b"http://evil.com",
            ]
            .concat(),
            [&[0u8, 3, 0, 1, 9][..], b"evil.test"].concat(),
            [
                &[1u8, 200, 10][..],
                b"api/chips/",
                &[1, 14],
                b"127.0.0.1:8080",
            ]
            .concat(),
        ],
        "tls_agent" => crate::tls::seeds(false),
        "tls_firmware" => crate::tls::seeds(true),
        "manifest" => crate::certs::manifest_seeds(),
        "pki_journal" => vec![
            include_bytes!("../../../fuzz/fixtures/pki/index.jsonl").to_vec(),
            // A torn last line, and a damaged line before the end.
            include_bytes!("../../../fuzz/fixtures/pki/index.jsonl")[..400].to_vec(),
            [
                include_bytes!("../../../fuzz/fixtures/pki/index.jsonl")[..]
                    .splitn(2, |&b| b == b'\n')
                    .next()
                    .unwrap_or_default(),
                b"\n{\"op\":\"revoke\"}\n",
            ]
            .concat(),
        ],
        _ => Vec::new(),
    }
}
