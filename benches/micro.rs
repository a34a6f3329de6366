//! Micro-benchmarks (criterion): frame encoding and decoding, and the
//! store's operations at a small and a large size.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use distcache::internals::proto::{encode_message, AddRequest, Command, Decoder, Role};
use distcache::{MemoryStore, Store};

fn id(i: u64) -> [u8; 32] {
    let mut id = [0x5a; 32];
    id[..8].copy_from_slice(&i.to_le_bytes());
    id
}

fn frames(c: &mut Criterion) {
    let data = vec![7u8; 1024];
    let mut add = Vec::new();
    let key = id(1);
    AddRequest {
        timeout_msecs: 1000,
        id: &key,
        data: &data,
    }
    .encode(&mut add)
    .expect("fits");
    let mut out = Vec::new();
    c.bench_function("encode ADD 1 KiB", |b| {
        b.iter(|| {
            out.clear();
            encode_message(&mut out, false, 1, Command::Add, black_box(&add)).expect("fits");
        })
    });
    let big = vec![9u8; 32 * 1024 - 8];
    let mut big_wire = Vec::new();
    encode_message(&mut big_wire, true, 1, Command::Get, &big).expect("fits");
    let mut one = Vec::new();
    encode_message(&mut one, false, 1, Command::Add, &add).expect("fits");
    for (name, wire, role) in [
        ("decode ADD 1 KiB", &one, Role::Server),
        (
            "decode GET reply 32 KiB (16 frames)",
            &big_wire,
            Role::Client,
        ),
    ] {
        c.bench_function(name, |b| {
            let mut d = Decoder::new(role);
            b.iter(|| {
                let (used, msg) = d.decode(black_box(wire)).expect("valid");
                assert_eq!(used, wire.len());
                black_box(msg)
            })
        });
    }
}

fn store(c: &mut Criterion) {
    let data = vec![3u8; 1024];
    for size in [512u64, 1_000_000] {
        let store = MemoryStore::new(size as usize);
        for i in 0..size {
            store.add(0, 3_600_000, &id(i), &data).expect("room");
        }
        let mut out = Vec::with_capacity(2048);
        let mut i = 0u64;
        c.bench_function(&format!("store GET hit, {size} sessions"), |b| {
            b.iter(|| {
                i = (i + 7919) % size;
                out.clear();
                assert!(store.get_into(1, black_box(&id(i)), &mut out));
            })
        });
        let mut next = size;
        c.bench_function(
            &format!("store ADD into a full store, {size} sessions"),
            |b| {
                b.iter_batched(
                    || {
                        next += 1;
                        id(next)
                    },
                    |k| store.add(1, 3_600_000, &k, &data).expect("room"),
                    BatchSize::SmallInput,
                )
            },
        );
    }
}

criterion_group!(benches, frames, store);
criterion_main!(benches);
