//! Client authentication and command permissions (`AUTH`, `HELLO ... AUTH`, the native
//! protocol's token): users from the node's configuration, each with a role, and a password
//! stored as an Argon2id hash (PHC string, `skiff-node --hash-password`), compared in
//! constant time by the `argon2` crate.
//!
//! With no users configured every connection may run everything, as a Redis without
//! `requirepass`. With users, a connection runs nothing but `AUTH`, `HELLO` and `QUIT` until
//! it authenticates (`NOAUTH`), then what its user's role allows (`NOPERM` otherwise):
//! - `read-only`: the connection's and server's commands, reads, `WATCH` and transactions of
//!   reads;
//! - `read-write`: and every data write;
//! - `admin`: and membership changes (`SKIFF.MEMBER` but `LIST`).
//!
//! Verifying an Argon2 hash takes milliseconds, on the event loop: a password verified once
//! is remembered as a keyed digest, so the connections of a pool that authenticate with it
//! cost a hash each, not an Argon2 run. Failed attempts are bounded per connection
//! ([`MAX_FAILURES`]): past them the connection is closed.

use std::collections::BTreeMap;
use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Failed authentications a connection may make; the next closes it.
pub(crate) const MAX_FAILURES: u32 = 5;

/// What a user may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read-only" => Some(Role::ReadOnly),
            "read-write" => Some(Role::ReadWrite),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        })
    }
}

/// The least role command `name` (lowercase) with `args` needs.
pub(crate) fn needs(name: &str, args: &[bytes::Bytes]) -> Role {
    let sub = |w: &[u8]| args.first().is_some_and(|a| a.eq_ignore_ascii_case(w));
    match name {
        "skiff.member" if sub(b"list") => Role::ReadOnly,
        "skiff.member" => Role::Admin,
        "config" if sub(b"get") => Role::ReadOnly,
        "config" => Role::Admin,
        "bgsave" => Role::Admin,
        _ if super::resp_commands::is_write(name) => Role::ReadWrite,
        _ => Role::ReadOnly,
    }
}

/// The least role a native operation needs: a write (or the registration before one) needs
/// read-write, the rest read-only.
pub(crate) fn needs_op(op: &skiff_core::kv::Op) -> Role {
    if op.is_write() {
        Role::ReadWrite
    } else {
        Role::ReadOnly
    }
}

/// Redis's answer to credentials that do not check.
pub(crate) const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A user of the configuration.
#[derive(Clone, Debug)]
struct User {
    role: Role,
    hash: String,
}

/// Why an authentication failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No such user, or not its password (one answer for both, as Redis gives).
    WrongPass,
}

/// The users, and the passwords already verified.
#[derive(Default)]
pub struct Users {
    users: BTreeMap<String, User>,
    /// `user -> keyed digest of a password verified for it`.
    verified: BTreeMap<String, [u8; 32]>,
    /// The key of those digests (drawn at start, never stored).
    key: [u8; 32],
    /// A hash checked when the user is unknown, so that an unknown user takes as long to
    /// refuse as a wrong password.
    dummy: String,
}

impl fmt::Debug for Users {
    /// Names and roles: no hash or digest reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.users.iter().map(|(n, u)| (n, u.role))).finish()
    }
}

/// A bad `[[users]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Argon2id hash of `password`, as a PHC string for the configuration.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("hashing a password").to_string()
}

impl Users {
    /// Users from `(name, role, password hash)`: a role or hash that does not parse is an
    /// error naming the user.
    pub fn new(entries: &[(String, String, String)]) -> Result<Users, UserError> {
        let mut users = BTreeMap::new();
        for (name, role, hash) in entries {
            let role = Role::parse(role).ok_or_else(|| {
                UserError(format!("user {name:?}: role {role:?} is not read-only, read-write or admin"))
            })?;
            PasswordHash::new(hash).map_err(|e| {
                UserError(format!(
                    "user {name:?}: password_hash is not a PHC string ({e}); make one with skiff-node --hash-password"
                ))
            })?;
            if users.insert(name.clone(), User { role, hash: hash.clone() }).is_some() {
                return Err(UserError(format!("user {name:?} is configured twice")));
            }
        }
        let mut key = [0u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut key);
        let dummy = if users.is_empty() { String::new() } else { hash_password("skiff: no such user") };
        Ok(Users { users, verified: BTreeMap::new(), key, dummy })
    }

    /// Whether connections must authenticate.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The role of `user` if `password` is its password.
    pub(crate) fn check(&mut self, user: &str, password: &[u8]) -> Result<Role, AuthError> {
        let Some(u) = self.users.get(user) else {
            if let Ok(h) = PasswordHash::new(&self.dummy) {
                let _ = Argon2::default().verify_password(password, &h);
            }
            return Err(AuthError::WrongPass);
        };
        let digest = self.digest(user, password);
        if let Some(known) = self.verified.get(user) {
            if constant_time_eq(known, &digest) {
                return Ok(u.role);
            }
        }
        let hash = PasswordHash::new(&u.hash).map_err(|_| AuthError::WrongPass)?;
        Argon2::default().verify_password(password, &hash).map_err(|_| AuthError::WrongPass)?;
        let role = u.role;
        self.verified.insert(user.to_string(), digest);
        Ok(role)
    }

    /// A digest of `(user, password)` under the node's key (BLAKE2b as a MAC).
    fn digest(&self, user: &str, password: &[u8]) -> [u8; 32] {
        use blake2::digest::{consts::U32, Mac};
        let mut mac = blake2::Blake2bMac::<U32>::new_from_slice(&self.key).expect("a 32-byte key");
        mac.update(&(user.len() as u64).to_le_bytes());
        mac.update(user.as_bytes());
        mac.update(password);
        mac.finalize().into_bytes().into()
    }
}

/// Equality of two digests in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let entries = [
            ("reader".to_string(), "read-only".to_string(), hash_password("r-pass")),
            ("ops".to_string(), "admin".to_string(), hash_password("o-pass")),
        ];
        Users::new(&entries).unwrap()
    }

    #[test]
    fn a_password_is_checked_against_its_hash_and_remembered() {
        let mut u = users();
        assert!(u.required());
        assert_eq!(u.check("reader", b"r-pass"), Ok(Role::ReadOnly));
        assert_eq!(u.check("reader", b"r-pass"), Ok(Role::ReadOnly), "from the digest");
        assert_eq!(u.check("reader", b"o-pass"), Err(AuthError::WrongPass));
        assert_eq!(u.check("ops", b"o-pass"), Ok(Role::Admin));
        assert_eq!(u.check("nobody", b"r-pass"), Err(AuthError::WrongPass));
        assert!(!Users::new(&[]).unwrap().required());
    }

    #[test]
    fn bad_entries_name_the_user() {
        let bad_role = [("x".to_string(), "root".to_string(), hash_password("p"))];
        assert!(Users::new(&bad_role).unwrap_err().0.contains("\"x\": role \"root\""));
        let bad_hash = [("y".to_string(), "admin".to_string(), "plaintext".to_string())];
        assert!(Users::new(&bad_hash).unwrap_err().0.contains("--hash-password"));
    }

    #[test]
    fn roles_allow_what_they_say() {
        let b = |s: &'static str| bytes::Bytes::from(s);
        assert_eq!(needs("get", &[b("k")]), Role::ReadOnly);
        assert_eq!(needs("set", &[b("k"), b("v")]), Role::ReadWrite);
        assert_eq!(needs("flushdb", &[]), Role::ReadWrite);
        assert_eq!(needs("skiff.member", &[b("LIST")]), Role::ReadOnly);
        assert_eq!(needs("skiff.member", &[b("remove"), b("2")]), Role::Admin);
        assert_eq!(needs("config", &[b("get"), b("save")]), Role::ReadOnly);
        assert_eq!(needs("config", &[b("set"), b("save"), b("")]), Role::Admin);
        assert_eq!(needs("ping", &[]), Role::ReadOnly);
        assert_eq!(needs("bgsave", &[]), Role::Admin);
        assert_eq!(needs("lastsave", &[]), Role::ReadOnly);
    }
}
