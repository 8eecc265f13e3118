//! How a golden script prints what it shows: positions, entries, messages, outputs.

use bytes::Bytes;
use skiff_core::{
    AppendResult, ChangeRefused, DropReason, Entry, EntryKind, HardState, Index, Membership, Message, MessageBody,
    NodeId, Output, Term,
};

pub(super) fn pos(index: Index, term: Term) -> String {
    format!("{}/t{}", index.0, term.0)
}

pub(super) fn opt_node(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".to_string(), |n| n.to_string())
}

/// Entry positions only: `[2/t1 3/t1]`.
pub(super) fn positions(entries: &[Entry]) -> String {
    let p: Vec<String> = entries.iter().map(|e| pos(e.index, e.term)).collect();
    format!("[{}]", p.join(" "))
}

/// An entry with its payload: `1/t1 noop`, `2/t1 x=1`.
pub(super) fn render_entry(e: &Entry) -> String {
    match e.kind {
        EntryKind::Noop => format!("{} noop", pos(e.index, e.term)),
        EntryKind::Command => format!("{} {}", pos(e.index, e.term), render_data(&e.data)),
        EntryKind::Config => match postcard::from_bytes::<Membership>(&e.data) {
            Ok(m) => format!("{} config {m}", pos(e.index, e.term)),
            Err(_) => format!("{} config (undecodable)", pos(e.index, e.term)),
        },
    }
}

pub(super) fn render_data(data: &Bytes) -> String {
    match std::str::from_utf8(data) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
        _ => format!("{:?}", String::from_utf8_lossy(data)),
    }
}

pub(super) fn render_hs(hs: &HardState) -> String {
    format!("(t{},vote={},commit={})", hs.term.0, opt_node(hs.vote), hs.commit.0)
}

pub(super) fn render_message(m: &Message) -> String {
    format!("{}->{} t{} {}", m.from, m.to, m.term.0, render_body(&m.body))
}

pub(super) fn granted(g: bool) -> &'static str {
    if g {
        "granted"
    } else {
        "rejected"
    }
}

pub(super) fn render_body(body: &MessageBody) -> String {
    match body {
        MessageBody::PreVote { last_index, last_term } => format!("PreVote{{last={}}}", pos(*last_index, *last_term)),
        MessageBody::PreVoteResponse { granted: g } => format!("PreVoteResponse {}", granted(*g)),
        MessageBody::Vote { last_index, last_term, transfer } => {
            let t = if *transfer { ", transfer" } else { "" };
            format!("Vote{{last={}{t}}}", pos(*last_index, *last_term))
        }
        MessageBody::VoteResponse { granted: g } => format!("VoteResponse {}", granted(*g)),
        MessageBody::Append { prev_index, prev_term, entries, commit } => format!(
            "Append{{prev={}, entries={}, commit={}}}",
            pos(*prev_index, *prev_term),
            positions(entries),
            commit.0
        ),
        MessageBody::AppendResponse(AppendResult::Success { match_index }) => {
            format!("AppendResponse Success(match={})", match_index.0)
        }
        MessageBody::AppendResponse(AppendResult::Reject {
            rejected_prev,
            conflict_term,
            conflict_first,
            last_index,
        }) => {
            let t = conflict_term.map_or_else(|| "none".to_string(), |t| t.to_string());
            format!(
                "AppendResponse Reject(prev={}, conflict={t}/{}, last={})",
                rejected_prev.0, conflict_first.0, last_index.0
            )
        }
        MessageBody::AppendResponse(AppendResult::StaleTerm) => "AppendResponse StaleTerm".to_string(),
        MessageBody::Heartbeat { commit, read_round, sent_at } => {
            format!("Heartbeat{{commit={}, read={read_round}, at={sent_at}}}", commit.0)
        }
        MessageBody::HeartbeatResponse { read_round, sent_at } => {
            format!("HeartbeatResponse{{read={read_round}, at={sent_at}}}")
        }
        MessageBody::TimeoutNow => "TimeoutNow".to_string(),
        MessageBody::InstallSnapshot { meta, offset, data, done } => format!(
            "InstallSnapshot{{at={}, offset={offset}, len={}{}}}",
            pos(meta.index, meta.term),
            data.len(),
            if *done { ", done" } else { "" }
        ),
        MessageBody::SnapshotResponse { index, next_offset, done } => {
            format!("SnapshotResponse{{at={}, next={next_offset}{}}}", index.0, if *done { ", done" } else { "" })
        }
        MessageBody::SnapshotRefused { index, max_bytes } => {
            format!("SnapshotRefused{{at={}, max={max_bytes}}}", index.0)
        }
    }
}

pub(super) fn render_reason(reason: &DropReason) -> String {
    match reason {
        DropReason::NotLeader { hint } => format!("NotLeader(hint={})", opt_node(*hint)),
        DropReason::Transferring { to } => format!("Transferring(to={to})"),
        DropReason::TooLarge { len, max } => format!("TooLarge(len={len}, max={max})"),
        DropReason::Membership(why) => match why {
            ChangeRefused::Pending { index } => format!("Membership(pending at i{})", index.0),
            ChangeRefused::OwnTermUncommitted => "Membership(own term uncommitted)".to_string(),
            ChangeRefused::Invalid(step) => format!("Membership({step})"),
        },
    }
}

pub(super) fn render_output(o: &Output) -> String {
    match o {
        Output::Send(m) => format!("Send {}", render_message(m)),
        Output::Persist(p) => {
            let hs = p.hard_state.as_ref().map_or_else(|| "-".to_string(), render_hs);
            let trunc = p.truncate_from.map_or_else(String::new, |t| format!(" truncate={}", t.0));
            let snap = p
                .snapshot
                .as_ref()
                .map_or_else(String::new, |s| format!(" snapshot={}", pos(s.meta.index, s.meta.term)));
            format!("Persist seq={} hs={hs}{snap}{trunc} entries={}", p.seq, positions(&p.entries))
        }
        Output::Apply(entries) => {
            let e: Vec<String> = entries.iter().map(render_entry).collect();
            format!("Apply [{}]", e.join(", "))
        }
        Output::Accepted { id, index, term } => format!("Accepted id={id} at {}", pos(*index, *term)),
        Output::ProposalDropped { id, reason } => format!("ProposalDropped id={id} {}", render_reason(reason)),
        Output::ApplySnapshot(snap) => {
            format!(
                "ApplySnapshot at={} data={:?}",
                pos(snap.meta.index, snap.meta.term),
                String::from_utf8_lossy(&snap.data)
            )
        }
        Output::ReadReady { id, index } => format!("ReadReady id={id} index={}", index.0),
        Output::ReadDropped { id, reason } => format!("ReadDropped id={id} {}", render_reason(reason)),
        Output::RoleChanged { role, term, leader } => {
            format!("RoleChanged {role:?} t{} leader={}", term.0, opt_node(*leader))
        }
        Output::MembershipChanged { index, membership, committed } => {
            format!("MembershipChanged i{} {membership} committed={committed}", index.0)
        }
        Output::LoadSnapshot { index } => format!("LoadSnapshot i{}", index.0),
    }
}
