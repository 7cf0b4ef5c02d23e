//! Jetstream's `compress=true` on earshot's side: bytes on the wire with and without it, and
//! what decompressing costs per event, the way the Jetstream source does it (one zstd frame
//! per event, Jetstream's dictionary, one reused buffer).
//!
//! ```sh
//! cargo run --release -p earshot-benches --bin jetstream-zstd -- \
//!     ../bench-data/corpus-200k.ndjson core/tests/fixtures/formats/jetstream-sample.ndjson
//! ```
//!
//! Each file's events are compressed as the server does (zstd level 3, the default of the Go
//! encoder Jetstream uses, with the dictionary), then decompressed in timed rounds; the
//! round-trip is checked byte for byte.

use std::time::Instant;

use anyhow::{bail, Context};
use earshot::source::jetstream::ZSTD_DICTIONARY;

fn main() -> anyhow::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        bail!("usage: jetstream-zstd FILE.ndjson…");
    }
    for path in paths {
        let text = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut compressor = zstd::bulk::Compressor::with_dictionary(3, ZSTD_DICTIONARY)?;
        let started = Instant::now();
        let compressed: Vec<Vec<u8>> = lines
            .iter()
            .map(|l| compressor.compress(l))
            .collect::<Result<_, _>>()?;
        let compress_s = started.elapsed().as_secs_f64();
        let raw: usize = lines.iter().map(|l| l.len()).sum();
        let packed: usize = compressed.iter().map(Vec::len).sum();
        let mut decompressor = zstd::bulk::Decompressor::with_dictionary(ZSTD_DICTIONARY)?;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut best = f64::MAX;
        for round in 0..5 {
            let started = Instant::now();
            for (z, line) in compressed.iter().zip(&lines) {
                buf.clear();
                let n = decompressor.decompress_to_buffer(z, &mut buf)?;
                if round == 0 && &buf[..n] != *line {
                    bail!("{path}: a round trip changed an event");
                }
                std::hint::black_box(&buf);
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let n = lines.len() as f64;
        println!(
            "{path}: {} events, {:.1} bytes/event plain, {:.1} compressed ({:.1}% of plain); \
             decompress {:.3} µs/event (best of 5), server-side compress {:.2} µs/event",
            lines.len(),
            raw as f64 / n,
            packed as f64 / n,
            100.0 * packed as f64 / raw as f64,
            best * 1e6 / n,
            compress_s * 1e6 / n
        );
    }
    Ok(())
}
