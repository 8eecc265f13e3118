//! Replays one case of the node target with the panic and its backtrace shown (the fuzz
//! binary hides panics while it counts them): `RUST_BACKTRACE=1 cargo run -p skiff-fuzz
//! --example replay_node -- SEED`.

fn main() {
    let Some(seed) = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: replay_node SEED");
        std::process::exit(2);
    };
    println!("{:?}", skiff_fuzz::node::run(seed));
}
