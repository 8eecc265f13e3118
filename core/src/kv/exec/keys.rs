//! Key commands: `DEL`, `EXISTS`, `TYPE`, `RENAME`, `KEYS`, `SCAN`, `DBSIZE`, `FLUSHDB`, and
//! expiry (`EXPIRE` and its kin, `TTL`, `PTTL`, `PERSIST`).

use alloc::vec::Vec;

use bytes::Bytes;

use super::Writer;
use crate::kv::cmd::{Cmd, ExpireCond, When};
use crate::kv::keyspace::{Keyspace, SHARDS};
use crate::kv::reply::{errors, Resp};

/// Whether `s` matches glob `p` as Redis matches them: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`,
/// and `\` escaping the next byte.
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear in practice, never
    // exponential, whatever the pattern.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(p, pi, s[si]) {
                        if matched {
                            pi = next;
                            si += 1;
                            continue;
                        }
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                b'\\' if pi + 1 < p.len() => {}
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The class `[...]` at `p[at]` against byte `c`: whether it matches and where the pattern
/// goes on. An unterminated class matches up to the pattern's end, as in Redis.
fn class(p: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < p.len() && p[i] != b']' {
        if p[i] == b'\\' && i + 1 < p.len() {
            matched |= p[i + 1] == c;
            i += 2;
        } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            let (lo, hi) = if p[i] <= p[i + 2] { (p[i], p[i + 2]) } else { (p[i + 2], p[i]) };
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    Some((matched != negate, (i + 1).min(p.len())))
}

/// Keys live at `now`, not yet removed by the sweep included in [`Keyspace::len`].
fn live_len(ks: &Keyspace, now: u64) -> usize {
    ks.len() - ks.expired_count(now)
}

/// Milliseconds (or seconds, rounded as Redis rounds them) left to live of `key`: -2 if
/// missing, -1 if it has no expiry.
fn ttl(ks: &Keyspace, key: &[u8], now: u64, millis: bool) -> i64 {
    let Some(item) = ks.live(key, now) else { return -2 };
    let Some(at) = item.expires else { return -1 };
    let left = at - now;
    if millis {
        left as i64
    } else {
        ((left + 500) / 1000) as i64
    }
}

pub(super) fn read(ks: &Keyspace, cmd: &Cmd, now: u64) -> Option<Resp> {
    Some(match cmd {
        Cmd::Exists { keys } => Resp::Int(keys.iter().filter(|k| ks.live(k, now).is_some()).count() as i64),
        Cmd::Type { key } => Resp::Simple(ks.live(key, now).map_or("none", |i| i.value.type_name()).into()),
        Cmd::Keys { pattern } => {
            Resp::bulks(ks.iter().filter(|(k, i)| !i.expired(now) && glob_match(pattern, k)).map(|(k, _)| k.to_bytes()))
        }
        Cmd::Scan { cursor, pattern, count, kind } => {
            // The cursor is a shard: each call answers whole shards, so a key present for
            // the whole iteration is answered exactly once.
            // Empty shards are skipped: the next cursor is the next shard that holds keys.
            let mut shards = ks.occupied_from((*cursor).min(SHARDS as u64) as usize).peekable();
            let mut keys = Vec::new();
            while let Some(shard) = shards.next_if(|_| (keys.len() as u64) < *count) {
                keys.extend(
                    ks.shard(shard)
                        .filter(|(_, i)| !i.expired(now))
                        .filter(|(k, _)| pattern.as_ref().is_none_or_match(k))
                        .filter(|(_, i)| kind.as_deref().map_or(true, |t| i.value.type_name() == t))
                        .map(|(k, _)| k.to_bytes()),
                );
            }
            let next = shards.next().unwrap_or(0);
            Resp::Array(alloc::vec![Resp::bulk(Bytes::from(alloc::format!("{next}"))), Resp::bulks(keys)])
        }
        Cmd::DbSize => Resp::Int(live_len(ks, now) as i64),
        Cmd::Ttl { key, millis } => Resp::Int(ttl(ks, key, now, *millis)),
        Cmd::ExpireTime { key, millis } => Resp::Int(match ks.live(key, now) {
            None => -2,
            Some(i) => i.expires.map_or(-1, |at| if *millis { at as i64 } else { (at / 1000) as i64 }),
        }),
        _ => return None,
    })
}

/// `MATCH` absent matches everything.
trait MatchAll {
    fn is_none_or_match(&self, key: &[u8]) -> bool;
}

impl MatchAll for Option<&Bytes> {
    fn is_none_or_match(&self, key: &[u8]) -> bool {
        self.map_or(true, |p| glob_match(p, key))
    }
}

impl Writer<'_> {
    pub(super) fn keys(&mut self, cmd: &Cmd) -> Option<Resp> {
        Some(match cmd {
            Cmd::Del { keys } => Resp::Int(keys.iter().filter(|k| self.delete(k)).count() as i64),
            Cmd::Rename { from, to, nx } => {
                self.purge(from);
                self.purge(to);
                if self.ks.get(from).is_none() {
                    return Some(Resp::error(errors::NO_SUCH_KEY));
                }
                if *nx && self.ks.get(to).is_some() {
                    return Some(Resp::Int(0));
                }
                if from != to {
                    let mut item = self.ks.remove(from).expect("present");
                    *self.last_delete = self.index;
                    item.version = self.index;
                    self.ks.insert(to, item);
                }
                if *nx {
                    Resp::Int(1)
                } else {
                    Resp::Ok
                }
            }
            Cmd::FlushDb => {
                if self.ks.len() > 0 {
                    *self.last_delete = self.index;
                }
                *self.ks = Keyspace::default();
                Resp::Ok
            }
            Cmd::Expire { key, when, cond } => {
                let now = self.now;
                let Some(item) = self.ks.live(key, now) else { return Some(Resp::Int(0)) };
                let at = match when {
                    When::After(ms) => (now as i64).saturating_add(*ms),
                    When::At(ms) => *ms,
                };
                let current = item.expires.map(|e| e as i64);
                let allowed = match cond {
                    ExpireCond::Always => true,
                    ExpireCond::NoTtl => current.is_none(),
                    ExpireCond::HasTtl => current.is_some(),
                    // No expiry counts as an infinite one.
                    ExpireCond::Later => current.is_some_and(|c| at > c),
                    ExpireCond::Sooner => current.map_or(true, |c| at < c),
                };
                if !allowed {
                    return Some(Resp::Int(0));
                }
                if at <= now as i64 {
                    self.delete(key);
                } else {
                    self.item_mut(key);
                    self.ks.set_expires(key, Some(at as u64));
                }
                Resp::Int(1)
            }
            Cmd::Persist { key } => {
                let Some(item) = self.ks.live(key, self.now) else { return Some(Resp::Int(0)) };
                if item.expires.is_none() {
                    return Some(Resp::Int(0));
                }
                self.item_mut(key);
                self.ks.set_expires(key, None);
                Resp::Int(1)
            }
            _ => return None,
        })
    }

    /// Removes up to `max` keys expired at the replicated clock (the leader's sweep);
    /// returns how many.
    pub(crate) fn sweep(&mut self, max: usize) -> usize {
        let due = self.ks.expired(self.now, max);
        for k in &due {
            self.ks.remove(k);
        }
        if !due.is_empty() {
            *self.last_delete = self.index;
        }
        due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_in_redis() {
        let yes = [
            ("*", ""),
            ("*", "abc"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("a\\*b", "a*b"),
            ("*b*c", "abxbc"),
            ("key:*", "key:1"),
        ];
        for (p, s) in yes {
            assert!(glob_match(p.as_bytes(), s.as_bytes()), "{p} ~ {s}");
        }
        let no = [("h?llo", "hllo"), ("h[^e]llo", "hello"), ("a\\*b", "axb"), ("key:*", "kex:1"), ("abc", "ab")];
        for (p, s) in no {
            assert!(!glob_match(p.as_bytes(), s.as_bytes()), "{p} !~ {s}");
        }
        // A pattern built to make naive backtracking exponential stays fast.
        let p = "*a*a*a*a*a*a*a*a*a*a*b";
        let s = "a".repeat(5000);
        assert!(!glob_match(p.as_bytes(), s.as_bytes()));
    }
}
