//! The sections of `INFO` that describe the process and its clients, in Redis's layout
//! (`# Server`, `# Clients`, `# Memory`, `# Persistence`, `# Stats`), for the tools that read
//! them (redis-cli, redis-py's `info()`, monitoring agents). The engine adds the Raft,
//! membership and keyspace sections.

use super::resp_commands::{ServerFacts, REDIS_VERSION};
use crate::metrics::Metrics;

/// What the client side knows for `INFO`.
pub(crate) struct ClientFacts<'a> {
    pub(crate) facts: &'a ServerFacts,
    pub(crate) metrics: &'a Metrics,
    pub(crate) connected: usize,
    pub(crate) buffered: usize,
    pub(crate) rejected: u64,
    pub(crate) evicted: u64,
}

/// Resident memory of this process in bytes, from `/proc/self/statm` (0 where there is
/// none).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The process and client sections, each line `field:value` ending in CRLF.
pub(crate) fn process_sections(c: &ClientFacts<'_>) -> String {
    let up = c.metrics.started.elapsed().as_secs();
    let rss = rss_bytes();
    let m = c.metrics;
    format!(
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nskiff_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\n\
         arch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n\
         node_id:{}\r\n\
         # Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\nclient_buffer_bytes:{}\r\n\
         rejected_connections:{}\r\nevicted_clients:{}\r\n\
         # Memory\r\nused_memory:{rss}\r\nused_memory_rss:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
         # Persistence\r\nloading:0\r\naof_enabled:1\r\naof_fsync:always\r\nrdb_bgsave_in_progress:0\r\n\
         snapshots_taken:{}\r\nlast_snapshot_bytes:{}\r\n\
         # Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_error_replies:{}\r\n\
         rejected_connections:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        c.facts.resp_port,
        up / 86_400,
        c.facts.node,
        c.connected,
        c.facts.max_clients,
        c.buffered,
        c.rejected,
        c.evicted,
        m.snapshots.get(),
        m.snapshot_bytes.get(),
        m.connections_total.get(),
        m.commands_all.get(),
        m.errors_all.get(),
        c.rejected,
    )
}
