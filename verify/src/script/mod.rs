//! Golden interaction scripts: a tiny command language that drives a cluster of
//! [`skiff_core::Node`]s by hand (no clock, no network randomness) and prints every output,
//! so a whole protocol exchange can be read, reviewed and pinned in `verify/testdata/*.txt`.
//!
//! A script is a sequence of blocks, with `# comment` and blank lines between them:
//!
//! ```text
//! command arg arg
//! ----
//! expected output lines
//!
//! ```
//!
//! [`run_script`] re-renders the text with the outputs the commands actually produce; a
//! script passes when the rendering equals its input. A command line not followed by `----`
//! is taken as a block whose output is still to be filled in (handy when writing a script).
//!
//! Commands (node ids are 1-based, `1` or `n1`):
//!
//! - `add-nodes N [pre-vote=false] [check-quorum=false] [max-entries=K] [max-inflight=K]`
//! - `tick ID [N]`, `campaign ID`, `propose ID DATA...`, `read ID`, `transfer ID TO`
//! - `deliver [A->B | all]`, `drop [A->B | all]` (`*` matches any node on either side)
//! - `persist ID | all`, `crash ID`, `restart ID`, `stabilize`
//! - `isolate ID`, `heal ID | all`: while a node is isolated, every message from or to it is
//!   dropped when its delivery comes up (so `stabilize` keeps it cut off)
//! - `log ID | all`, `status ID | all`
//! - `add-joiner`, `change ID STEP [+ STEP ...] [joint]`, `membership ID | all` (see
//!   `membership.rs`)
//!
//! Output conventions: `nX: ...` is an output of node X; `> ...` is an input handed to a node
//! by `deliver`, `persist` or `stabilize` (a received message, a durability acknowledgement),
//! followed by the outputs it caused. A command with nothing to show prints `ok`.
//! Positions are written `index/tterm`, e.g. `2/t1`; messages and persists list entry
//! positions only (`log` shows payloads); `hs=-` is a persist without hard state; `status`
//! appends the non-zero `View::ignored` counters.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

mod membership;
mod render;

use self::render::{opt_node, pos, positions, render_data, render_entry, render_hs, render_message, render_output};
use crate::checker::Durable;
use skiff_core::{Config, Index, Input, Message, Node, NodeId, Output, Persist, Proposal, Restored};

/// Runs a script and returns its text with every block's output replaced by the actual one.
pub fn run_script(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut cluster = Cluster::default();
    let mut rendered = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            rendered.push_str(line);
            rendered.push('\n');
            continue;
        }
        if lines.get(i).map(|l| l.trim()) == Some("----") {
            // Skip the expected output and the blank line that ends the block.
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                i += 1;
            }
            i += 1;
        } else if lines.get(i).is_some_and(|l| l.trim().is_empty()) {
            // A new block without output yet: its blank separator is re-rendered below.
            i += 1;
        }
        let output = match cluster.run(line.trim()) {
            Ok(out) if out.is_empty() => vec!["ok".to_string()],
            Ok(out) => out,
            Err(e) => vec![format!("error: {e}")],
        };
        rendered.push_str(line);
        rendered.push_str("\n----\n");
        for l in output {
            rendered.push_str(&l);
            rendered.push('\n');
        }
        rendered.push('\n');
    }
    rendered
}

/// One server: its core (absent while crashed), its simulated disk and the persists handed
/// to that disk but not yet acknowledged (lost on a crash).
#[derive(Debug)]
struct Server {
    id: NodeId,
    config: Config,
    node: Option<Node>,
    disk: Durable,
    pending: Vec<Persist>,
}

#[derive(Debug, Default)]
struct Cluster {
    servers: Vec<Server>,
    /// Messages in flight, in the order they were sent.
    queue: VecDeque<Message>,
    /// Nodes cut off from the network.
    isolated: BTreeSet<NodeId>,
    next_proposal: u64,
    /// The settings of `add-nodes`, for servers added later.
    base: Option<Config>,
}

/// Which messages a `deliver` or `drop` concerns: `None` matches any node.
#[derive(Clone, Copy, Debug)]
struct Link {
    from: Option<NodeId>,
    to: Option<NodeId>,
}

impl Link {
    fn matches(&self, m: &Message) -> bool {
        let end = |want: Option<NodeId>, got: NodeId| !matches!(want, Some(w) if w != got);
        end(self.from, m.from) && end(self.to, m.to)
    }
}

type Lines = Vec<String>;

impl Cluster {
    fn run(&mut self, line: &str) -> Result<Lines, String> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        if cmd != "add-nodes" && self.servers.is_empty() {
            return Err("no cluster yet: start with add-nodes".into());
        }
        let mut out = Vec::new();
        match cmd {
            "add-nodes" => self.add_nodes(&args)?,
            "add-joiner" => out = self.add_joiner(&args)?,
            "change" => self.change(&args, &mut out)?,
            "membership" => self.show_membership(&args, &mut out)?,
            "tick" => {
                expect_args(&args, 1, 2)?;
                let id = self.node_id(args[0])?;
                let n = args.get(1).map_or(Ok(1), |a| parse_num(a))?;
                for _ in 0..n {
                    self.step(id, Input::Tick, &mut out)?;
                }
            }
            "campaign" => {
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                self.step(id, Input::Campaign, &mut out)?;
            }
            "read" => {
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                self.next_proposal += 1;
                self.step(id, Input::Read { id: self.next_proposal }, &mut out)?;
            }
            "snapshot" => {
                // The service snapshots its state at what it applied: here, a text naming it.
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                let applied = self.server(id).node.as_ref().map_or(Index(0), |n| n.view().applied);
                let data = Bytes::from(format!("state@{}", applied.0));
                self.step(id, Input::Snapshot { index: applied, data }, &mut out)?;
            }
            "transfer" => {
                expect_args(&args, 2, 2)?;
                let id = self.node_id(args[0])?;
                let to = self.node_id(args[1])?;
                self.step(id, Input::TransferLeadership { to }, &mut out)?;
            }
            "propose" => {
                if args.len() < 2 {
                    return Err("usage: propose ID DATA".into());
                }
                let id = self.node_id(args[0])?;
                self.next_proposal += 1;
                let data = Bytes::from(args[1..].join(" "));
                self.step(id, Input::Propose(Proposal { id: self.next_proposal, data }), &mut out)?;
            }
            "deliver" | "drop" => {
                expect_args(&args, 0, 1)?;
                let link = self.link(args.first().copied().unwrap_or("all"))?;
                if cmd == "deliver" {
                    self.deliver(link, &mut out);
                } else {
                    self.drop_messages(link, &mut out);
                }
            }
            "persist" => {
                expect_args(&args, 1, 1)?;
                for id in self.targets(args[0])? {
                    self.persist(id, &mut out)?;
                }
            }
            "crash" => {
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                out.push(self.crash(id)?);
            }
            "restart" => {
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                out.push(self.restart(id)?);
            }
            "isolate" => {
                expect_args(&args, 1, 1)?;
                let id = self.node_id(args[0])?;
                self.isolated.insert(id);
            }
            "heal" => {
                expect_args(&args, 1, 1)?;
                for id in self.targets(args[0])? {
                    self.isolated.remove(&id);
                }
            }
            "stabilize" => {
                expect_args(&args, 0, 0)?;
                self.stabilize(&mut out)?;
            }
            "log" => {
                expect_args(&args, 1, 1)?;
                for id in self.targets(args[0])? {
                    self.show_log(id, &mut out);
                }
            }
            "status" => {
                expect_args(&args, 1, 1)?;
                for id in self.targets(args[0])? {
                    out.push(self.status(id));
                }
            }
            _ => return Err(format!("unknown command {cmd:?}")),
        }
        Ok(out)
    }

    fn add_nodes(&mut self, args: &[&str]) -> Result<(), String> {
        if !self.servers.is_empty() {
            return Err("the cluster already exists".into());
        }
        let n: u64 = parse_num(args.first().ok_or("usage: add-nodes N [options]")?)?;
        if n == 0 {
            return Err("a cluster needs at least one node".into());
        }
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut template = Config::builder(NodeId(1), voters.clone(), 0);
        for opt in &args[1..] {
            let (key, value) = opt.split_once('=').ok_or_else(|| format!("option {opt:?} is not key=value"))?;
            template = match key {
                "pre-vote" => template.pre_vote(parse_bool(value)?),
                "check-quorum" => template.check_quorum(parse_bool(value)?),
                "max-entries" => template.max_entries_per_msg(parse_num(value)?),
                "max-inflight" => template.max_inflight_msgs(parse_num(value)?),
                "chunk" => template.snapshot_chunk_bytes(parse_num(value)?),
                "max-chunks" => template.max_inflight_snapshot_chunks(parse_num(value)?),
                _ => return Err(format!("unknown option {key:?}")),
            };
        }
        let base = template.build().map_err(|e| e.to_string())?;
        self.base = Some(base.clone());
        for &id in &voters {
            // The same settings, with this node's id and its id as the seed.
            let config = with_settings(Config::builder(id, voters.clone(), id.0), &base)?;
            self.add_server(id, config)?;
        }
        Ok(())
    }

    /// Starts server `id` with `config` on an empty disk.
    fn add_server(&mut self, id: NodeId, config: Config) -> Result<(), String> {
        let node = Node::new(config.clone(), Restored::default()).map_err(|e| e.to_string())?;
        self.servers.push(Server { id, config, node: Some(node), disk: Durable::default(), pending: Vec::new() });
        Ok(())
    }

    fn node_id(&self, word: &str) -> Result<NodeId, String> {
        let n: u64 = parse_num(word.strip_prefix('n').unwrap_or(word))?;
        if n == 0 || n as usize > self.servers.len() {
            return Err(format!("no node {word}"));
        }
        Ok(NodeId(n))
    }

    /// `all` or one node id.
    fn targets(&self, word: &str) -> Result<Vec<NodeId>, String> {
        if word == "all" {
            Ok(self.servers.iter().map(|s| s.id).collect())
        } else {
            Ok(vec![self.node_id(word)?])
        }
    }

    fn link(&self, word: &str) -> Result<Link, String> {
        if word == "all" {
            return Ok(Link { from: None, to: None });
        }
        let (from, to) = word.split_once("->").ok_or_else(|| format!("{word:?} is not FROM->TO or all"))?;
        let end = |w: &str| if w == "*" { Ok(None) } else { self.node_id(w).map(Some) };
        Ok(Link { from: end(from)?, to: end(to)? })
    }

    fn server(&mut self, id: NodeId) -> &mut Server {
        &mut self.servers[id.0 as usize - 1]
    }

    /// Feeds one input to a running node and renders its outputs, queueing sends and persists.
    fn step(&mut self, id: NodeId, input: Input, out: &mut Lines) -> Result<(), String> {
        let server = self.server(id);
        let node = server.node.as_mut().ok_or_else(|| format!("{id} is down"))?;
        let outputs = node.step(input);
        let mut sent = Vec::new();
        for o in outputs {
            out.push(format!("{id}: {}", render_output(&o)));
            match o {
                Output::Send(m) => sent.push(m),
                Output::Persist(p) => server.pending.push(p),
                _ => {}
            }
        }
        self.queue.extend(sent);
        Ok(())
    }

    /// Delivers the matching messages queued now, in order; what they cause is queued behind.
    fn deliver(&mut self, link: Link, out: &mut Lines) {
        let queued = std::mem::take(&mut self.queue);
        let mut kept = VecDeque::new();
        for m in queued {
            if !link.matches(&m) {
                kept.push_back(m);
                continue;
            }
            let to = m.to;
            if to.0 == 0 || to.0 as usize > self.servers.len() {
                out.push(format!("> {} (dropped: no server {to})", render_message(&m)));
                continue;
            }
            if let Some(cut) = [m.from, to].into_iter().find(|n| self.isolated.contains(n)) {
                out.push(format!("> {} (dropped: {cut} is isolated)", render_message(&m)));
                continue;
            }
            if self.server(to).node.is_none() {
                out.push(format!("> {} (dropped: {to} is down)", render_message(&m)));
                continue;
            }
            out.push(format!("> {}", render_message(&m)));
            self.step(to, Input::Message(m), out).expect("checked up");
        }
        kept.append(&mut self.queue);
        self.queue = kept;
    }

    fn drop_messages(&mut self, link: Link, out: &mut Lines) {
        let (dropped, kept): (VecDeque<Message>, VecDeque<Message>) =
            std::mem::take(&mut self.queue).into_iter().partition(|m| link.matches(m));
        self.queue = kept;
        out.extend(dropped.iter().map(|m| format!("dropped {}", render_message(m))));
    }

    /// Makes every pending persist of `id` durable on its disk, then acknowledges them all.
    fn persist(&mut self, id: NodeId, out: &mut Lines) -> Result<(), String> {
        let server = self.server(id);
        if server.node.is_none() {
            return Ok(());
        }
        let pending = std::mem::take(&mut server.pending);
        let Some(up_to) = pending.last().map(|p| p.seq) else { return Ok(()) };
        for p in &pending {
            server.disk.apply(p);
        }
        out.push(format!("> {id}: Persisted up_to={up_to}"));
        self.step(id, Input::Persisted { up_to }, out)
    }

    fn crash(&mut self, id: NodeId) -> Result<String, String> {
        let server = self.server(id);
        if server.node.take().is_none() {
            return Err(format!("{id} is already down"));
        }
        let lost: Vec<String> = std::mem::take(&mut server.pending).iter().map(|p| p.seq.to_string()).collect();
        Ok(format!("{id}: Crashed, lost unacknowledged persists [{}]", lost.join(" ")))
    }

    fn restart(&mut self, id: NodeId) -> Result<String, String> {
        let server = self.server(id);
        if server.node.is_some() {
            return Err(format!("{id} is running"));
        }
        let node = Node::new(server.config.clone(), server.disk.restored()).map_err(|e| format!("restore: {e}"))?;
        server.node = Some(node);
        let disk = &server.disk;
        let snap = disk
            .snapshot
            .as_ref()
            .map_or_else(String::new, |s| format!(" snapshot={}", pos(s.meta.index, s.meta.term)));
        Ok(format!(
            "{id}: Restarted from disk hs={}{snap} entries={}",
            render_hs(&disk.hard_state),
            positions(&disk.log)
        ))
    }

    fn stabilize(&mut self, out: &mut Lines) -> Result<(), String> {
        for _ in 0..1000 {
            if self.queue.is_empty() && self.servers.iter().all(|s| s.pending.is_empty()) {
                return Ok(());
            }
            let ids: Vec<NodeId> = self.servers.iter().map(|s| s.id).collect();
            for id in ids {
                self.persist(id, out)?;
            }
            self.deliver(Link { from: None, to: None }, out);
        }
        Err("no quiescence after 1000 rounds".into())
    }

    fn show_log(&mut self, id: NodeId, out: &mut Lines) {
        let Some(node) = &self.server(id).node else {
            out.push(format!("{id}: down"));
            return;
        };
        let view = node.view();
        let log = node.log();
        if view.last_index == Index(0) {
            out.push(format!("{id}: (empty log)"));
        }
        if let Some(snap) = log.snapshot() {
            out.push(format!(
                "{id}: snapshot up to {} {}",
                pos(snap.meta.index, snap.meta.term),
                render_data(&snap.data)
            ));
        } else if let Some(meta) = log.snapshot_meta() {
            out.push(format!("{id}: snapshot up to {} (bytes in storage)", pos(meta.index, meta.term)));
        }
        for i in view.snapshot_index.0 + 1..=view.last_index.0 {
            let e = log.entry(Index(i)).expect("entries up to last_index exist");
            out.push(format!("{id}: {}", render_entry(e)));
        }
        out.push(format!("{id}: commit={} applied={}", view.commit.0, view.applied.0));
    }

    fn status(&mut self, id: NodeId) -> String {
        let Some(node) = &self.server(id).node else { return format!("{id}: down") };
        let v = node.view();
        let mut s = format!(
            "{id}: term={} vote={} role={:?} leader={} commit={} applied={} last={} durable={}",
            v.term.0,
            opt_node(v.vote),
            v.role,
            opt_node(v.leader),
            v.commit.0,
            v.applied.0,
            pos(v.last_index, v.last_term),
            v.durable.0,
        );
        if let Some(to) = v.transferring_to {
            s.push_str(&format!(" transferring_to={to}"));
        }
        if v.pending_reads > 0 {
            s.push_str(&format!(" pending_reads={}", v.pending_reads));
        }
        let ig = v.ignored;
        let counts = [
            ("stale_term", ig.stale_term),
            ("misaddressed", ig.misaddressed),
            ("stray_response", ig.stray_response),
            ("malformed", ig.malformed),
            ("leased_vote", ig.leased_vote),
            ("leased_term", ig.leased_term),
            ("bad_persisted", ig.bad_persisted),
            ("bad_transfer", ig.bad_transfer),
            ("bad_snapshot", ig.bad_snapshot),
            ("stale_chunk", ig.stale_chunk),
            ("too_large_snapshot", ig.too_large_snapshot),
        ];
        let nonzero: Vec<String> = counts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}={n}")).collect();
        if !nonzero.is_empty() {
            s.push_str(&format!(" ignored{{{}}}", nonzero.join(" ")));
        }
        s
    }
}

fn expect_args(args: &[&str], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        return Err(format!("expected {min}..={max} arguments, got {}", args.len()));
    }
    Ok(())
}

fn parse_num<T: std::str::FromStr>(word: &str) -> Result<T, String> {
    word.parse().map_err(|_| format!("{word:?} is not a number"))
}

fn parse_bool(word: &str) -> Result<bool, String> {
    word.parse().map_err(|_| format!("{word:?} is not true or false"))
}

/// `builder` with the cluster's settings (`add-nodes`'s options), built.
fn with_settings(builder: skiff_core::ConfigBuilder, base: &Config) -> Result<Config, String> {
    builder
        .heartbeat_ticks(2)
        .election_ticks(10, 20)
        .pre_vote(base.pre_vote())
        .check_quorum(base.check_quorum())
        .max_entries_per_msg(base.max_entries_per_msg())
        .max_inflight_msgs(base.max_inflight_msgs())
        .snapshot_chunk_bytes(base.snapshot_chunk_bytes())
        .max_inflight_snapshot_chunks(base.max_inflight_snapshot_chunks())
        .build()
        .map_err(|e| e.to_string())
}
