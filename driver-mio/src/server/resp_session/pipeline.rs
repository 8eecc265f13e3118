//! Pipelining in a RESP session: the data commands a client sent without waiting for
//! replies go as one operation.

use bytes::Bytes;
use skiff_core::kv::{validate_op, Cmd, Op};

use super::{Item, Kind, RespSession, Step};
use crate::server::resp_commands::command_label;

/// Most pipelined commands sent as one operation.
const MAX_BATCH: usize = 256;

impl RespSession {
    /// Data command `first` and the data commands queued right after it (a client that
    /// pipelines), sent as one operation: a read pipeline at one ReadIndex, or, if any
    /// writes, one log entry applied in order (one sequence number, so a retry applies it
    /// once). Each is answered in order from the array of replies. The batch ends before
    /// anything else (a connection command, `MULTI`, a command that does not parse or is over
    /// a limit: it then goes alone and gets its own error), at [`MAX_BATCH`] commands, or at
    /// the value limit in bytes, so the entry always fits.
    pub(super) fn pipeline(&mut self, first: Cmd, first_size: usize) -> Step {
        let limits = (self.facts.max_key_bytes, self.facts.max_value_bytes);
        let fits = |c: &Cmd| validate_op(&Op::Cmd(c.clone()), limits.0, limits.1).is_ok();
        if !fits(&first) {
            return Step::Start(Kind::Data, Op::Cmd(first));
        }
        // The batch's arguments, with room for each command's encoding, stay within the value
        // limit, so the operation fits a native frame when it is forwarded (its bound is
        // twice the key and value limits).
        let mut bytes = first_size + 64;
        let mut commands = vec![first];
        let mut labels = vec![self.started.0];
        while commands.len() < MAX_BATCH {
            let Some(Item::Command(args)) = self.queue.front() else { break };
            let size: usize = args.iter().map(Bytes::len).sum();
            if bytes + size + 64 > limits.1 {
                break;
            }
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            let Some(Ok(cmd)) = Cmd::parse(args) else { break };
            if !fits(&cmd) {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= size;
            bytes += size + 64;
            commands.push(cmd);
            labels.push(command_label(&name));
        }
        if commands.len() == 1 {
            return Step::Start(Kind::Data, Op::Cmd(commands.pop().expect("one")));
        }
        self.batch = labels;
        let op = if commands.iter().any(Cmd::is_write) {
            Op::Exec { commands, watched: None }
        } else {
            Op::Reads { commands }
        };
        Step::Start(Kind::Batch, op)
    }
}
