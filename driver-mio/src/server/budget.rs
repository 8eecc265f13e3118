//! [`Budget`]: what the client connections hold in their buffers, counted per connection so
//! that the total is known at all times without walking them, and the counts of connections
//! the limits refused or closed.

use std::collections::HashMap;

use mio::Token;

/// Invariant: `total` is the sum of `usage`, whose keys are exactly the client connections
/// open.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    usage: HashMap<Token, usize>,
    total: usize,
    /// Connections refused at accept (too many open).
    pub(crate) refused: u64,
    /// Connections closed for holding the most when the total passed its bound.
    pub(crate) evicted: u64,
}

impl Budget {
    /// A client connection opened (holding nothing yet).
    pub(crate) fn open(&mut self, token: Token) {
        self.set(token, Some(0));
    }

    /// Connection `token` now holds `bytes` (`None`: it closed).
    pub(crate) fn set(&mut self, token: Token, bytes: Option<usize>) {
        let before = match bytes {
            Some(n) => self.usage.insert(token, n),
            None => self.usage.remove(&token),
        };
        self.total = self.total - before.unwrap_or(0) + bytes.unwrap_or(0);
    }

    /// Bytes all client connections hold.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Client connections open.
    pub(crate) fn connections(&self) -> usize {
        self.usage.len()
    }

    /// The connection holding the most, and how much.
    pub(crate) fn largest(&self) -> Option<(Token, usize)> {
        self.usage.iter().max_by_key(|(_, b)| **b).map(|(t, b)| (*t, *b))
    }

    /// Every connection closed.
    pub(crate) fn clear(&mut self) {
        self.usage.clear();
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_follows_every_change_and_close() {
        let mut b = Budget::default();
        b.open(Token(1));
        b.open(Token(2));
        b.set(Token(1), Some(10));
        b.set(Token(2), Some(30));
        b.set(Token(1), Some(5));
        assert_eq!((b.total(), b.connections(), b.largest()), (35, 2, Some((Token(2), 30))));
        b.set(Token(2), None);
        b.set(Token(2), None);
        assert_eq!((b.total(), b.connections()), (5, 1));
        b.clear();
        assert_eq!((b.total(), b.largest()), (0, None));
    }
}
