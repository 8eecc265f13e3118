//! `etcd-load`: `--clients` concurrent requesters (each one request at a time) over
//! `--conns` gRPC connections to etcd, for `--seconds`; puts of 64-byte values or
//! linearizable gets (etcd's default `Range`). Prints ops/s and latency p50/p99, in the same
//! form as `skiff bench`, so both can be measured in one run on one machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use etcd_client::Client;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Op {
    Put,
    Get,
}

#[derive(Parser, Debug)]
struct Args {
    /// etcd client endpoints, comma-separated.
    #[arg(long, default_value = "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379")]
    endpoints: String,
    #[arg(long, value_enum, default_value = "put")]
    op: Op,
    /// gRPC connections (each client uses connection `client % conns`).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent requesters.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let endpoints: Vec<String> = a.endpoints.split(',').map(str::to_string).collect();
    // Find the leader's endpoint: etcd followers forward to it, as skiff's nodes do, but the
    // fairest figure for both is talking to the leader directly.
    let mut leader = endpoints[0].clone();
    for e in &endpoints {
        let mut c = Client::connect([e.as_str()], None).await?;
        let s = c.status().await?;
        if s.leader() == s.header().map_or(0, |h| h.member_id()) {
            leader = e.clone();
        }
    }
    let mut conns = Vec::new();
    for _ in 0..a.conns.max(1) {
        conns.push(Client::connect([leader.as_str()], None).await?);
    }
    let value = "v".repeat(64);
    if matches!(a.op, Op::Get) {
        for k in 0..a.keys {
            conns[0].put(format!("key{k}"), value.clone(), None).await?;
        }
    }
    let lat = Arc::new(Mutex::new(Vec::<u64>::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for c in 0..a.clients.max(1) {
        let mut client = conns[c % conns.len()].clone();
        let (lat, value, op, keys) = (lat.clone(), value.clone(), a.op, a.keys);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut n = c;
            while Instant::now() < end {
                let key = format!("key{}", n % keys);
                n += 7919;
                let t = Instant::now();
                let ok = match op {
                    Op::Put => client.put(key, value.clone(), None).await.is_ok(),
                    Op::Get => client.get(key, None).await.is_ok(),
                };
                if ok {
                    mine.push(t.elapsed().as_micros() as u64);
                }
            }
            lat.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = lat.lock().await.clone();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "etcd {:?}: conns={} clients={} ops={} ops_per_s={:.0} p50_ms={:.3} p99_ms={:.3}",
        a.op,
        a.conns,
        a.clients,
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0
    );
    Ok(())
}
