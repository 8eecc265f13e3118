//! Pieces shared by the `skiff-node` and `skiff` binaries.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::NodeConfig;

/// Parses `1=127.0.0.1:7001,2=...` into a map of id to address.
pub fn parse_map(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((id, addr)) => Ok((id.trim().to_string(), addr.trim().to_string())),
            None => Err(format!("'{pair}' is not of the form id=host:port")),
        })
        .collect()
}

/// A flag set by SIGTERM and SIGINT (Ctrl-C).
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    Ok(stop)
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs to stderr in `format`, level from `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => logs.json().with_ansi(false).try_init(),
    };
}

/// The configuration of node `id` (1-based) of a local cluster of `n` nodes under `dir`.
pub fn local_node(id: u64, n: u64, dir: &std::path::Path) -> NodeConfig {
    let peers = (1..=n).map(|k| (k.to_string(), format!("127.0.0.1:{}", 7000 + k))).collect();
    let clients = (1..=n).map(|k| (k.to_string(), format!("127.0.0.1:{}", 7100 + k))).collect();
    NodeConfig {
        id,
        cluster_id: 1,
        peers,
        clients,
        client_listen: format!("127.0.0.1:{}", 7100 + id),
        resp_listen: format!("127.0.0.1:{}", 6380 + id),
        metrics_listen: Some(format!("127.0.0.1:{}", 9180 + id)),
        data_dir: dir.join(format!("n{id}")),
        ..NodeConfig::default()
    }
}
