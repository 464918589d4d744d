//! Micro-benchmarks live in `benches/hot.rs`; run them with `cargo bench -p bench-micro`.
