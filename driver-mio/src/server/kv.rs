//! The KV service inside the event loop: `skiff_core::kv::Service`, the one server side every
//! driver runs, with the loop's waiters and its clock. No I/O and no locks: the loop hands it
//! requests and the core's outputs, and carries out the actions it hands back.

use std::time::Instant;

use mio::Token;
use skiff_core::kv::{Action, Command, KvState, Service, ServiceConfig, ServiceError};
use skiff_core::{Output, Snapshot};

/// Who waits for a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// Request `id` of a native client connection.
    Native { token: Token, id: u64 },
    /// Attempt `attempt` of a RESP connection's clerk.
    Resp { token: Token, attempt: u64 },
}

/// The service and its clock, in milliseconds: the wall clock read at start
/// ([`skiff_std::kv::wall_ms`]) advanced by the loop's monotonic clock, so it never goes back.
/// It is the unit of `ServiceConfig::request_timeout` and of the sessions' ttl here, and it
/// stamps the entries this node proposes as leader: the nodes' clocks must be roughly in step.
#[derive(Debug)]
pub(crate) struct LocalKv {
    service: Service<Waiter>,
    epoch: Instant,
    epoch_ms: u64,
}

impl LocalKv {
    /// Starts from `snapshot` (what the node restored), if any; one that does not decode is
    /// an error (starting empty would diverge from the log).
    pub(crate) fn new(
        config: ServiceConfig,
        snapshot: Option<&Snapshot>,
        now: Instant,
    ) -> Result<LocalKv, ServiceError> {
        Ok(LocalKv { service: Service::new(config, snapshot)?, epoch: now, epoch_ms: skiff_std::kv::wall_ms() })
    }

    fn ms(&self, now: Instant) -> u64 {
        self.epoch_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Takes one client request; its answer comes out of [`LocalKv::take_actions`].
    pub(crate) fn request(&mut self, command: Command, waiter: Waiter, now: Instant) {
        let now = self.ms(now);
        self.service.request(command, waiter, now);
    }

    /// Feeds one output of the core (those that are not the service's are ignored).
    pub(crate) fn on_output(&mut self, output: &Output) -> Result<(), ServiceError> {
        self.service.on_output(output).map(drop)
    }

    /// Answers `Timeout` to every request past its deadline.
    pub(crate) fn expire(&mut self, now: Instant) {
        let now = self.ms(now);
        self.service.expire(now);
    }

    pub(crate) fn take_actions(&mut self) -> Vec<Action<Waiter>> {
        self.service.take_actions()
    }

    /// See [`Service::freeze`].
    pub(crate) fn freeze(&mut self) -> Option<(skiff_core::Index, KvState)> {
        self.service.freeze()
    }

    /// Whether no request is in progress (constant time: the loop asks on every wakeup).
    pub(crate) fn idle(&self) -> bool {
        self.service.idle()
    }

    /// Requests in progress (for `INFO`; walks the waiting lists).
    pub(crate) fn in_progress(&self) -> usize {
        self.service.in_progress()
    }

    /// Keys held.
    pub(crate) fn keys(&self) -> usize {
        self.service.state().len()
    }

    /// Client sessions held.
    /// Keys with an expiry.
    pub(crate) fn volatile(&self) -> usize {
        self.service.state().volatile()
    }

    pub(crate) fn sessions(&self) -> usize {
        self.service.state().sessions()
    }

    /// Snapshots installed from a leader.
    pub(crate) fn installed(&self) -> u64 {
        self.service.installed()
    }
}
