//! Benchmarks of the on-disk format's hot paths: the block codec in each
//! combination (none, zstd, AES-256-GCM-SIV, both), block seeks, and bloom
//! filter probes.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::format::block::{Block, BlockBuilder};
use strata::format::bloom::{BloomBuilder, BloomFilter};
use strata::format::codec::{
    BlockContext, BlockDecoder, BlockEncoder, BlockKind, Compression, EncryptionKey, MAX_BLOCK_LEN,
};
use strata::format::key::{compare_internal, InternalKeyRef, ValueKind};

/// A 4 KiB data block of 16-byte keys and 100-byte values, half of each
/// value random and half repeated, like db_bench's default compressibility.
fn data_block() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut b = BlockBuilder::new(16);
    let mut keys = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0u64;
    while b.estimated_size() < 4096 {
        let key = InternalKeyRef {
            user_key: format!("{:016}", i * 7919).as_bytes(),
            ts: 1000 + i,
            kind: ValueKind::Put,
        }
        .to_vec();
        let mut value = Vec::with_capacity(100);
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push((x >> 32) as u8);
        }
        value.extend_from_slice(&[b'v'; 50]);
        b.add(&key, &value);
        keys.push(key);
        i += 1;
    }
    (b.finish(), keys)
}

fn codec(c: &mut Criterion) {
    let (raw, _) = data_block();
    let key = Arc::new(EncryptionKey::new(1, [7; 32]));
    let ctx = BlockContext {
        file_number: 42,
        file_uid: [1; 16],
        offset: 8192,
        kind: BlockKind::Data,
    };
    let combos = [
        ("none", Compression::None, None),
        ("zstd3", Compression::Zstd { level: 3 }, None),
        ("aes", Compression::None, Some(key.clone())),
        (
            "zstd3+aes",
            Compression::Zstd { level: 3 },
            Some(key.clone()),
        ),
    ];
    let mut g = c.benchmark_group("block_codec");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    for (name, compression, k) in combos {
        let mut enc = BlockEncoder::new(compression, k.clone()).unwrap();
        let mut out = Vec::with_capacity(8192);
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                out.clear();
                enc.encode(black_box(&raw), &ctx, &mut out).unwrap();
            })
        });
        out.clear();
        enc.encode(&raw, &ctx, &mut out).unwrap();
        eprintln!("{name}: {} raw bytes stored as {}", raw.len(), out.len());
        let mut dec = BlockDecoder::new();
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                dec.decode(black_box(&out), &ctx, k.as_deref(), MAX_BLOCK_LEN)
                    .unwrap()
                    .len()
            })
        });
    }
    g.finish();
}

fn block_seek(c: &mut Criterion) {
    let (raw, keys) = data_block();
    let block = Block::new(Bytes::from(raw), 0).unwrap();
    let mut i = 0usize;
    c.bench_function("block_seek_4k", |b| {
        b.iter(|| {
            i = (i + 17) % keys.len();
            let mut it = block.iter(compare_internal);
            it.seek(black_box(&keys[i])).unwrap();
            it.value().len()
        })
    });
}

fn bloom(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut b = BloomBuilder::new(10);
    for i in 0..N {
        b.add_key(&i.to_be_bytes());
    }
    let data = b.finish();
    let f = BloomFilter::new(&data).unwrap();
    let mut g = c.benchmark_group("bloom_probe");
    let mut i = 0u64;
    g.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            f.may_contain(black_box(&i.to_be_bytes()))
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            f.may_contain(black_box(&(i + N).to_be_bytes()))
        })
    });
    g.finish();
}

criterion_group!(benches, codec, block_seek, bloom);
criterion_main!(benches);
