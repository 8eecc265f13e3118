//! postcard framing of messages, shared by every driver: a frame is a 4-byte big-endian
//! length followed by that many bytes of postcard payload.

use alloc::vec::Vec;
use core::fmt;
use serde::{de::DeserializeOwned, Serialize};

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The length prefix announces more than the configured maximum; nothing was allocated.
    TooLarge { len: u64, max: u64 },
    /// The payload is not a valid postcard encoding of the expected type.
    Malformed,
    /// Encoding failed (only when the value cannot be represented).
    Encode,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TooLarge { len, max } => write!(f, "frame of {len} bytes exceeds the maximum of {max}"),
            CodecError::Malformed => write!(f, "malformed frame payload"),
            CodecError::Encode => write!(f, "value could not be encoded"),
        }
    }
}

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Appends one frame holding `value` to `buf`.
pub fn encode_frame<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; LEN_PREFIX]);
    let payload = postcard::to_allocvec(value).map_err(|_| CodecError::Encode)?;
    let len = u32::try_from(payload.len()).map_err(|_| CodecError::Encode)?;
    buf.extend_from_slice(&payload);
    buf[start..start + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Tries to take one frame from the front of `buf`. Returns `Ok(None)` when more bytes are
/// needed, or the value and the number of bytes consumed. A length above `max` is refused
/// before anything is allocated.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8], max: u64) -> Result<Option<(T, usize)>, CodecError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let mut len_bytes = [0; LEN_PREFIX];
    len_bytes.copy_from_slice(&buf[..LEN_PREFIX]);
    let len = u64::from(u32::from_be_bytes(len_bytes));
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    let end = LEN_PREFIX + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let value = postcard::from_bytes(&buf[LEN_PREFIX..end]).map_err(|_| CodecError::Malformed)?;
    Ok(Some((value, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AppendResult, Message, MessageBody};
    use crate::types::{Entry, EntryKind, Index, NodeId, Term};
    use bytes::Bytes;

    fn sample() -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::Append {
                prev_index: Index(4),
                prev_term: Term(2),
                entries: alloc::vec![Entry {
                    term: Term(3),
                    index: Index(5),
                    kind: EntryKind::Command,
                    data: Bytes::from_static(b"hello")
                }],
                commit: Index(4),
            },
        }
    }

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut buf = Vec::new();
        encode_frame(&sample(), &mut buf).unwrap();
        let reply =
            Message { body: MessageBody::AppendResponse(AppendResult::Success { match_index: Index(5) }), ..sample() };
        encode_frame(&reply, &mut buf).unwrap();
        for cut in 0..buf.len() {
            let got: Option<(Message, usize)> = decode_frame(&buf[..cut], 1 << 20).unwrap();
            if let Some((m, used)) = got {
                assert_eq!(m, sample());
                assert!(used <= cut);
            }
        }
        let (m, used) = decode_frame::<Message>(&buf, 1 << 20).unwrap().unwrap();
        assert_eq!(m, sample());
        let (m2, _) = decode_frame::<Message>(&buf[used..], 1 << 20).unwrap().unwrap();
        assert_eq!(m2, reply);
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let huge = [0xff, 0xff, 0xff, 0xff, 0];
        assert_eq!(decode_frame::<Message>(&huge, 1024), Err(CodecError::TooLarge { len: u32::MAX as u64, max: 1024 }));
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert_eq!(decode_frame::<Message>(&garbage, 1024), Err(CodecError::Malformed));
    }
}
