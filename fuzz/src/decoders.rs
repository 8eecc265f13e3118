//! Decoder targets: each case decodes one random or mutated input (mutations of valid
//! encodings reach deep into the formats) the way the node does, and checks that nothing
//! panics, that progress is real, and that no allocation exceeds [`alloc::decoder_bound`].

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use skiff_core::codec::{decode_frame, encode_frame};
use skiff_core::kv::{encode, Body, Cmd, Command, KvState, LogEntry, Op, Reply, Resp, SessionLimits};
use skiff_core::wire::{ClientRequest, ClientResponse, Hello};
use skiff_core::{
    Entry, EntryKind, HardState, Index, Membership, Message, MessageBody, NodeId, Persist, Snapshot, SnapshotMeta, Term,
};
use skiff_mio::resp::{parse_command, Limits, Parser};
use skiff_std::storage::{parse_snapshot_file, parse_wal_segment, FileStorage, FileStorageOptions, SimFs, Storage};

use crate::alloc;
use crate::mutate::{input, Rng};

/// Frames a decoder is given at most (as the node's `max_peer_frame` bounds them).
const MAX_FRAME: u64 = 1 << 20;

fn within_bound(len: usize) -> Result<(), String> {
    let (peak, bound) = (alloc::peak(), alloc::decoder_bound(len));
    if peak > bound {
        return Err(format!("an allocation of {peak} bytes for an input of {len} (bound {bound})"));
    }
    Ok(())
}

/// RESP: commands are taken from the front of the buffer until it needs more bytes or fails,
/// as a connection does; every command taken consumes bytes.
pub fn resp(seed: u64) -> Result<(), String> {
    static VALID: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let valid = VALID.get_or_init(|| {
        [
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"[..],
            b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n",
            b"PING\r\nGET k\r\n",
            b"*0\r\n*-1\r\n$-1\r\n",
            b"ZADD z 1.5 a\r\nLRANGE l -3 -1\r\nSETRANGE r 10 ab\r\nGETRANGE a -9 -2\r\n",
            b"SPOP s 3\r\nEXPIRE a -5 GT\r\nSCAN 0 MATCH * COUNT 2 TYPE set\r\nINCRBYFLOAT n 1e300\r\n",
            b"SET a b NX PX 10 GET\r\nHINCRBY h f -9223372036854775808\r\nZPOPMAX z 2\r\nGETEX a PERSIST\r\n",
        ]
        .iter()
        .map(|v| v.to_vec())
        .collect()
    });
    let mut rng = Rng::new(seed);
    let buf = input(&mut rng, valid, 512);
    let limits = Limits { max_bulk: 64, max_args: 8, max_inline: 128, max_command: 200 };
    let mut at = 0;
    let mut whole = Vec::new();
    let mut whole_error = false;
    while at < buf.len() {
        match parse_command(&buf[at..], &limits) {
            Ok(Some((_, used))) if used == 0 || at + used > buf.len() => {
                return Err(format!("a command took {used} bytes at {at} of {}", buf.len()));
            }
            Ok(Some((args, used))) => {
                whole.push(args);
                at += used;
            }
            Ok(None) => break,
            Err(_) => {
                whole_error = true;
                break;
            }
        }
    }
    // The incremental parser, fed the same bytes in random pieces, must find the same
    // commands and the same error.
    let (mut parser, mut pending, mut pieces, mut fed) = (Parser::default(), Vec::new(), Vec::new(), 0);
    let mut piece_error = false;
    'feed: while fed < buf.len() {
        let n = (1 + rng.below(64) as usize).min(buf.len() - fed);
        pending.extend_from_slice(&buf[fed..fed + n]);
        fed += n;
        loop {
            match parser.parse(&pending, &limits) {
                Ok((cmd, used)) => {
                    pending.drain(..used);
                    match cmd {
                        Some(args) => pieces.push(args),
                        None => break,
                    }
                }
                Err(_) => {
                    piece_error = true;
                    break 'feed;
                }
            }
        }
    }
    // Each command, parsed and run on a state holding every type: an answer, never a panic.
    let mut kv = base_state().clone();
    for (i, args) in whole.iter().enumerate() {
        let args: Vec<bytes::Bytes> = args.iter().map(|a| bytes::Bytes::copy_from_slice(a)).collect();
        let Some(Ok(cmd)) = Cmd::parse(&args) else { continue };
        if cmd.is_write() {
            let command = Command { client: 1, seq: 100 + i as u64, op: Op::Cmd(cmd) };
            let entry = encode(&LogEntry { time: 7, body: Body::Write { command, max_value: 1 << 10 } });
            kv.apply(Index(1000 + i as u64), &entry);
        } else {
            let _ = kv.read(&cmd);
        }
    }
    if pieces != whole || piece_error != whole_error {
        return Err(format!(
            "fed in pieces: {} commands (error {piece_error}); whole: {} (error {whole_error})",
            pieces.len(),
            whole.len()
        ));
    }
    within_bound(buf.len())
}

fn frames<T: serde::Serialize>(values: &[T]) -> Vec<Vec<u8>> {
    values
        .iter()
        .map(|v| {
            let mut buf = Vec::new();
            encode_frame(v, &mut buf).expect("encodes");
            buf
        })
        .collect()
}

/// Decodes frames from the front of `buf` until one is incomplete or refused.
fn decode_all<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while at < buf.len() {
        match decode_frame::<T>(&buf[at..], MAX_FRAME) {
            Ok(Some((_, 0))) => return Err(format!("a frame of 0 bytes at {at}")),
            Ok(Some((_, used))) => at += used,
            Ok(None) | Err(_) => break,
        }
    }
    within_bound(buf.len())
}

/// Native client frames, both directions.
pub fn native(seed: u64) -> Result<(), String> {
    static VALID: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let valid = VALID.get_or_init(|| {
        let op = |k: u64| match k {
            0 => Op::get("k"),
            1 => Op::put("key", "value"),
            _ => Op::append("a", "xyz"),
        };
        let mut v = frames(
            &(0..3).map(|k| ClientRequest::new(k, Command { client: 7, seq: k, op: op(k) })).collect::<Vec<_>>(),
        );
        v.extend(frames(&[
            ClientResponse::new(1, Reply::Ok(Resp::bulk("v"))),
            ClientResponse::new(2, Reply::WrongLeader { hint: Some(NodeId(2)) }),
            ClientResponse::new(3, Reply::Invalid { reason: "no".into() }),
        ]));
        v
    });
    let mut rng = Rng::new(seed);
    let buf = input(&mut rng, valid, 256);
    decode_all::<ClientRequest>(&buf)?;
    decode_all::<ClientResponse>(&buf)
}

fn sample_entries() -> Vec<Entry> {
    (1..=3)
        .map(|i| Entry {
            index: Index(i),
            term: Term(2),
            kind: EntryKind::Command,
            data: Bytes::from(vec![i as u8; 5]),
        })
        .collect()
}

/// Peer frames: the greeting and every message kind.
pub fn peer(seed: u64) -> Result<(), String> {
    static VALID: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let valid = VALID.get_or_init(|| {
        let meta = SnapshotMeta {
            index: Index(3),
            term: Term(2),
            membership: Membership::from_voters(vec![NodeId(1), NodeId(2)]).unwrap(),
            membership_index: Index(0),
        };
        let bodies = [
            MessageBody::Vote { last_index: Index(3), last_term: Term(2), transfer: false },
            MessageBody::Append {
                prev_index: Index(0),
                prev_term: Term(0),
                entries: sample_entries(),
                commit: Index(1),
            },
            MessageBody::InstallSnapshot { meta, offset: 0, data: Bytes::from_static(b"snap"), done: true },
            MessageBody::Heartbeat { commit: Index(2), read_round: 4, sent_at: 9 },
        ];
        let mut v = frames(&bodies.map(|body| Message { from: NodeId(1), to: NodeId(2), term: Term(2), body }));
        v.extend(frames(&[Hello::new(7, NodeId(1), Bytes::from_static(b"raft=127.0.0.1:7001"))]));
        v
    });
    let mut rng = Rng::new(seed);
    let buf = input(&mut rng, valid, 512);
    decode_all::<Hello>(&buf)?;
    decode_all::<Message>(&buf)
}

/// Files a short storage workload leaves: WAL segments and a snapshot file.
fn storage_files() -> Vec<(String, Vec<u8>)> {
    let fs = SimFs::new();
    let (mut s, _) =
        FileStorage::open_on(fs.clone(), "/d", FileStorageOptions { segment_bytes: 200, ..Default::default() })
            .expect("a fresh storage opens");
    let hs = HardState { term: Term(2), vote: Some(NodeId(1)), commit: Index(2) };
    let p = |seq, snapshot, entries| Persist { seq, snapshot, hard_state: Some(hs), truncate_from: None, entries };
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: Index(2),
            term: Term(2),
            membership: Membership::from_voters(vec![NodeId(1)]).unwrap(),
            membership_index: Index(0),
        },
        data: Bytes::from_static(b"state"),
    };
    s.append(&[p(1, None, sample_entries())]).expect("writes");
    s.append(&[p(2, Some(snap), vec![])]).expect("writes");
    fs.image().files().into_iter().map(|(path, bytes)| (path.display().to_string(), bytes)).collect()
}

/// A data directory of format 3 (read, never written, by this release).
const FORMAT3_SEGMENTS: [&[u8]; 2] = [
    include_bytes!("../../driver-std/tests/fixtures/format3/wal/00000000000000000003.wal"),
    include_bytes!("../../driver-std/tests/fixtures/format3/wal/00000000000000000004.wal"),
];
const FORMAT3_SNAPSHOT: &[u8] = include_bytes!("../../driver-std/tests/fixtures/format3/snapshot");

/// WAL segments (of format 4 and 3), parsed as recovery parses them.
pub fn wal(seed: u64) -> Result<(), String> {
    static VALID: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let valid = VALID.get_or_init(|| {
        let mut v: Vec<Vec<u8>> =
            storage_files().into_iter().filter(|(p, _)| p.ends_with(".wal")).map(|(_, b)| b).collect();
        v.extend(FORMAT3_SEGMENTS.iter().map(|b| b.to_vec()));
        v
    });
    let mut rng = Rng::new(seed);
    let buf = input(&mut rng, valid, 512);
    let _ = parse_wal_segment(Path::new("fuzz.wal"), &buf);
    within_bound(buf.len())
}

/// Commands whose entries seed the KV mutations: every type, with expiry.
const KV_COMMANDS: &[&str] = &[
    "SET a 1",
    "APPEND b 2",
    "SET e v PX 100",
    "HSET h f v g w",
    "RPUSH l x y z",
    "SADD s m n",
    "ZADD z 1 a 2.5 b",
    "SETRANGE r 3 abc",
    "INCRBY n 5",
    "EXPIRE h 50",
];

/// A state that applied [`KV_COMMANDS`].
fn base_state() -> &'static KvState {
    static STATE: OnceLock<KvState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut kv = KvState::new();
        for (i, entry) in kv_entries().iter().enumerate() {
            kv.apply(Index(i as u64 + 1), entry);
        }
        kv
    })
}

/// A register, then one entry per command of [`KV_COMMANDS`].
fn kv_entries() -> Vec<Vec<u8>> {
    let mut v = vec![encode(&LogEntry { time: 5, body: Body::Register { limits: SessionLimits::default() } })];
    for (i, words) in KV_COMMANDS.iter().enumerate() {
        let args: Vec<bytes::Bytes> = words.split(' ').map(|w| bytes::Bytes::copy_from_slice(w.as_bytes())).collect();
        let cmd = Cmd::parse(&args).expect("a data command").expect("valid");
        let command = Command { client: 1, seq: i as u64 + 1, op: Op::Cmd(cmd) };
        v.push(encode(&LogEntry { time: 6 + i as u64, body: Body::Write { command, max_value: 1 << 20 } }));
    }
    v
}

/// Snapshot files, and the KV state inside a snapshot.
pub fn snapshot(seed: u64) -> Result<(), String> {
    static VALID: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let valid = VALID.get_or_init(|| {
        let mut v: Vec<Vec<u8>> =
            storage_files().into_iter().filter(|(p, _)| p.ends_with("snapshot")).map(|(_, b)| b).collect();
        v.push(FORMAT3_SNAPSHOT.to_vec());
        v.extend(kv_entries());
        v.push(base_state().snapshot());
        v
    });
    let mut rng = Rng::new(seed);
    let buf = input(&mut rng, valid, 512);
    let _ = parse_snapshot_file(Path::new("fuzz.snapshot"), &buf);
    if let Ok(restored) = KvState::restore(&buf) {
        let _ = restored.snapshot();
    }
    // A mangled entry applied to a state holding every type: never a panic.
    let mut kv = base_state().clone();
    let _ = kv.apply(Index(1000), &buf);
    within_bound(buf.len())
}
