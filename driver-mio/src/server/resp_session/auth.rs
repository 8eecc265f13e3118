//! Authentication in a RESP session: the gate every command passes (`NOAUTH`, `NOPERM`),
//! `AUTH` and `HELLO ... AUTH`, and the credentials forwarded requests carry.

use bytes::Bytes;
use skiff_core::kv::Resp;

use super::{acl, local, Local, RespSession, Step, Token};

impl RespSession {
    /// The credentials the connection's forwarded requests carry.
    pub(super) fn token(&self) -> Option<Token> {
        self.authed.as_ref().map(|(user, _, password)| Token { user: user.clone(), password: password.clone() })
    }

    /// Whether command `name` may run now: with users configured, only `AUTH`, `HELLO`,
    /// `QUIT` and `RESET` before the connection authenticates, then what its role allows.
    pub(super) fn gate(&self, name: &str, args: &[Bytes]) -> Result<(), Resp> {
        if !self.users.lock().expect("users").required() {
            return Ok(());
        }
        match &self.authed {
            None if matches!(name, "auth" | "hello" | "quit" | "reset") => Ok(()),
            None => Err(Resp::error("NOAUTH Authentication required.")),
            Some((user, role, _)) if *role < acl::needs(name, &args[1..]) => {
                Err(Resp::Error(format!("NOPERM User {user} has no permissions to run the '{name}' command")))
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks `user`'s `password`: on success the connection is that user; on failure it is
    /// answered `WRONGPASS`, and past [`acl::MAX_FAILURES`] failures closed.
    fn try_auth(&mut self, user: &str, password: &Bytes) -> bool {
        let checked = self.users.lock().expect("users").check(user, password);
        match checked {
            Ok(role) => {
                self.authed = Some((user.to_string(), role, password.clone()));
                self.failures = 0;
                true
            }
            Err(_) => {
                self.failures += 1;
                self.metrics.auth_failures.inc();
                tracing::info!(user, failures = self.failures, "failed authentication");
                if self.failures >= acl::MAX_FAILURES {
                    self.close_after(&Resp::error("ERR too many failed authentication attempts"));
                } else {
                    self.reply(&Resp::error(acl::WRONGPASS));
                }
                false
            }
        }
    }

    /// `AUTH [user] password`.
    pub(super) fn authenticate(&mut self, user: &str, password: &Bytes) -> Step {
        if self.try_auth(user, password) {
            self.reply(&Resp::Ok);
        }
        Step::Answered
    }

    /// `HELLO`: with users configured, its `AUTH user password` authenticates first (and a
    /// connection that has not authenticated must give one); the rest is the connection's.
    pub(super) fn hello(&mut self, args: &[Bytes]) -> Step {
        let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth"));
        let required = self.users.lock().expect("users").required();
        let mut rest: Vec<Bytes> = args[1..].to_vec();
        if required {
            match at.map(|i| (i, args.get(i + 1), args.get(i + 2))) {
                Some((i, Some(user), Some(password))) => {
                    let (user, password) = (String::from_utf8_lossy(user).into_owned(), password.clone());
                    if !self.try_auth(&user, &password) {
                        return Step::Answered;
                    }
                    rest = args[1..i].iter().chain(&args[i + 3..]).cloned().collect();
                }
                Some(_) => {}
                None if self.authed.is_none() => {
                    self.reply(&Resp::error(
                        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO \
                         <proto> AUTH <user> <pass> option can be used to authenticate the client and select the \
                         RESP protocol version at the same time",
                    ));
                    return Step::Answered;
                }
                None => {}
            }
        }
        match local("hello", &rest, &mut self.state, &self.facts) {
            Local::Reply(r) => self.reply(&r),
            Local::Close(r) => self.close_after(&r),
            Local::No => unreachable!("HELLO is the connection's"),
        }
        Step::Answered
    }
}
