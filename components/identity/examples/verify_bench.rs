//! Measures access-token and API-key verification on this machine and
//! prints a table: `cargo run --release -p copycar-identity --example verify_bench`.

use copycar_identity::{AccessToken, ApiKey, Role, SigningKey, now_unix};
use std::hint::black_box;
use std::time::Instant;

fn measure(name: &str, iterations: u32, mut op: impl FnMut()) {
    // Warm up caches and the branch predictor first.
    for _ in 0..iterations / 10 {
        op();
    }
    let mut samples = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        let started = Instant::now();
        op();
        samples.push(started.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let mean = samples.iter().sum::<u64>() / samples.len() as u64;
    println!("{name:<28} {mean:>9} {:>9} {:>9}", pick(0.5), pick(0.99));
}

fn main() {
    let key = SigningKey::new("benchmark-signing-key-with-at-least-32-bytes").unwrap();
    let now = now_unix();
    let (token, _) = AccessToken::issue(
        &key,
        "user-1",
        "tenant-1",
        Role::Admin,
        Some("s1"),
        now,
        3600,
    )
    .unwrap();
    let api_key = ApiKey::generate().unwrap();
    let api_key_text = api_key.to_key_string();
    let stored_hash = api_key.secret_hash();

    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "operation (ns)", "mean", "p50", "p99"
    );
    measure("access token verify", 200_000, || {
        black_box(AccessToken::verify(&key, black_box(&token), now).unwrap());
    });
    measure("access token issue", 50_000, || {
        black_box(
            AccessToken::issue(&key, "user-1", "tenant-1", Role::Admin, None, now, 3600).unwrap(),
        );
    });
    measure("api key parse + verify", 200_000, || {
        let parsed = ApiKey::parse(black_box(&api_key_text)).unwrap();
        black_box(parsed.verify(&stored_hash).unwrap());
    });
}
