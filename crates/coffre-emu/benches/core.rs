//! Criterion benchmarks of the protocol core and the emulator.
//! Run: `cargo bench -p coffre-emu`.

use std::hint::black_box;

use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_proto::command::{self, AccessSize};
use coffre_proto::crc::crc16;
use coffre_proto::packet::{encode_response, parse_response, MAX_PACKET, MAX_RESPONSE};
use coffre_proto::zone::Zone;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn proto(c: &mut Criterion) {
    let mut g = c.benchmark_group("proto");
    let data = [0xA5u8; 128];
    g.throughput(Throughput::Bytes(128));
    g.bench_function("crc16 128 B", |b| b.iter(|| crc16(black_box(&data))));
    g.throughput(Throughput::Elements(1));
    let w = command::write(Zone::Data, 0x40, &[7; 32]).unwrap();
    g.bench_function("encode Write 32 B", |b| {
        let mut out = [0u8; MAX_PACKET];
        b.iter(|| black_box(&w).encode(&mut out).unwrap())
    });
    let mut rsp = [0u8; MAX_RESPONSE];
    let n = encode_response(&[1; 64], &mut rsp).unwrap();
    g.bench_function("parse 67-byte response", |b| {
        b.iter(|| parse_response(black_box(&rsp[..n])).unwrap().len())
    });
    g.finish();
}

fn emulator(c: &mut Criterion) {
    let mut g = c.benchmark_group("emulator");
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let mut buf = [0u8; 32];
    g.bench_function("Read 32 B through driver and bus", |b| {
        b.iter(|| {
            chip.read(Zone::Data, AccessSize::Block, 8 << 3, &mut buf)
                .unwrap()
        })
    });
    g.bench_function("Sign (Nonce + Sign, P-256)", |b| {
        b.iter(|| chip.sign_digest(0, black_box(&[3; 32])).unwrap())
    });
    g.finish();
}

criterion_group!(benches, proto, emulator);
criterion_main!(benches);
