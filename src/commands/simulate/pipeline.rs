//! `mon simulate`'s input, read and decoded in batches, on the engine's
//! thread or on a second one ahead of it.
//!
//! Reading, UTF-8 checking and decoding a line need only the program
//! (`NumberedLine::decode`); the engine needs every line in file order. So
//! the input is cut into [`Batch`]es of decoded lines, and the same
//! [`decode_input`] either hands each batch straight to the engine's side
//! (one thread) or sends it over a bounded channel to it (two threads). The
//! engine's side does exactly the same with a batch either way, which is
//! what keeps the output byte-identical. This module must not look at the
//! simulation's state: a line's clock instant is decided on the engine side.

use std::io::{self, BufRead};
use std::sync::mpsc;

use mon_runtime::simulate::NumberedLine;
use mon_runtime::Decoder;

/// Lines per batch: enough to make one channel hand-over per batch cheap
/// next to decoding it, few enough that the engine is never far behind.
pub const BATCH_LINES: usize = 1024;

/// Batches in flight between the threads: bounds the memory held by a
/// decoder running ahead of a slower engine.
const QUEUED_BATCHES: usize = 8;

/// Bytes read from the input at a time. Lines are decoded where they lie
/// in this buffer; only a line cut by its end is copied.
const READ_BUFFER: usize = 1 << 20;

/// Decoded lines in file order, and how far into the input they reach.
#[derive(Debug, Default)]
pub struct Batch {
    pub lines: Vec<NumberedLine>,
    /// Bytes of input consumed up to the end of this batch (for the
    /// progress bar).
    pub read: u64,
    /// The error that ended the input after these lines, if any.
    pub failed: Option<io::Error>,
}

/// Reads `input` to its end and decodes every line, handing the lines to
/// `deliver` in batches; stops early when `deliver` returns `false`.
///
/// A batch is also handed over whenever the read buffer runs dry, before
/// the next read, which may block: a line typed into a pipe is simulated
/// at once instead of waiting for a batch to fill.
pub fn decode_input(input: impl io::Read, decoder: &Decoder, mut deliver: impl FnMut(Batch) -> bool) {
    let mut input = io::BufReader::with_capacity(READ_BUFFER, input);
    let mut batch = Batch::default();
    // A line cut by the end of the buffer, gathered across reads.
    let mut cut: Vec<u8> = Vec::new();
    let mut number: u64 = 0;
    let mut read: u64 = 0;
    let mut take = |bytes: &[u8], batch: &mut Batch| {
        number += 1;
        if let Some(line) = NumberedLine::decode(decoder, bytes, number) {
            batch.lines.push(line);
        }
    };
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                batch.failed = Some(e);
                deliver(batch);
                return;
            }
        };
        if buffer.is_empty() {
            // As `BufRead::split` does: a last line without a newline
            // counts, an empty one after the last newline does not.
            if !cut.is_empty() {
                take(&cut, &mut batch);
            }
            batch.read = read;
            deliver(batch);
            return;
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buffer) {
            if cut.is_empty() {
                take(&buffer[start..end], &mut batch);
            } else {
                cut.extend_from_slice(&buffer[start..end]);
                take(&cut, &mut batch);
                cut.clear();
            }
            start = end + 1;
            if batch.lines.len() >= BATCH_LINES {
                batch.read = read + start as u64;
                if !deliver(std::mem::take(&mut batch)) {
                    return;
                }
            }
        }
        cut.extend_from_slice(&buffer[start..]);
        let consumed = buffer.len();
        input.consume(consumed);
        read += consumed as u64;
        if !batch.lines.is_empty() {
            batch.read = read;
            if !deliver(std::mem::take(&mut batch)) {
                return;
            }
        }
    }
}

/// Decodes `input` on a second thread while `engine` takes the batches on
/// this one, in order; `engine` returns `false` to stop reading.
///
/// Each batch goes back to the decoding thread once the engine is done
/// with it, and is freed there. Why: glibc's allocator keeps memory per
/// thread; freed on the engine's thread, every event's allocations went
/// back through a lock to the decoder's arena, whose own allocations then
/// never found a freed chunk at hand. That was a third of all samples of
/// a `mon simulate` profile (`docs/notes/performance.md`).
pub fn decode_ahead<R: io::Read + Send>(input: R, decoder: &Decoder, mut engine: impl FnMut(&mut Batch) -> bool) {
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel::<Batch>(QUEUED_BATCHES);
        let (give_back, given_back) = mpsc::channel::<Batch>();
        // Why the closure returns the send's result: when the engine stops
        // (the receiver is dropped), the decoder stops too.
        scope.spawn(move || {
            decode_input(input, decoder, |batch| {
                given_back.try_iter().for_each(drop);
                send.send(batch).is_ok()
            })
        });
        for mut batch in receive {
            let going_on = engine(&mut batch);
            // The decoder may have finished: then this thread frees it.
            let _ = give_back.send(batch);
            if !going_on {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use mon_compiler::{compile, NoSchemas, SourceFile};
    use proptest::prelude::*;

    const RULES: &str = "event ping { n: int }\nworkflow pings {\n  key n\n  expect ping\n}\n";

    /// A reader that hands its bytes out in pieces of the given sizes, in
    /// turn, as a pipe does.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl io::Read for Pieces {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()].min(buffer.len()).min(self.bytes.len() - self.at);
            self.turn += 1;
            buffer[..size].copy_from_slice(&self.bytes[self.at..self.at + size]);
            self.at += size;
            Ok(size)
        }
    }

    /// What the loop before the pipeline did: `BufRead::split` on newlines,
    /// lines numbered from 1, each decoded alone.
    fn line_by_line(decoder: &Decoder, bytes: &[u8]) -> Vec<String> {
        let lines = BufRead::split(bytes, b'\n').map(|line| line.unwrap_or_default());
        lines
            .enumerate()
            .filter_map(|(index, line)| NumberedLine::decode(decoder, &line, index as u64 + 1))
            .map(|line| format!("{line:?}"))
            .collect()
    }

    fn a_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0..1000i64).prop_map(|n| format!(
                r#"{{"type":"ping","time":"2026-03-02T08:00:0{}Z","id":"p{n}","data":{{"n":{n}}}}}"#,
                n % 10
            )
            .into_bytes()),
            Just(b"not json".to_vec()),
            Just(b"".to_vec()),
            Just(b" \r".to_vec()),
            Just(b"\xef\xbb\xbf{\"type\":\"ping\"}".to_vec()),
            Just(b"{\"type\":\"\xff\"}".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn batches_hold_every_line_in_file_order_with_its_number(
            mut lines in prop::collection::vec(a_line(), 0..3000),
            // A line longer than the read buffer, gathered across reads.
            long in prop::option::of((0usize..3000, 1usize..3)),
            newline_at_end in any::<bool>(),
            sizes in prop::collection::vec(1usize..200_000, 1..6),
            ahead in any::<bool>(),
        ) {
            let sources = vec![SourceFile { path: "pings.mon".into(), text: RULES.into() }];
            let program = compile(&sources, mon_stdlib::registry(), &NoSchemas).program.ok_or_else(|| TestCaseError::fail("the rules compile"))?;
            let decoder = Decoder::new(&program);
            if let Some((at, halves)) = long {
                lines.insert(at.min(lines.len()), vec![b'x'; halves * READ_BUFFER / 2 + 1]);
            }
            let mut bytes = lines.join(&b'\n');
            if newline_at_end {
                bytes.push(b'\n');
            }
            let input = Pieces { bytes: bytes.clone(), at: 0, sizes, turn: 0 };
            let mut seen = Vec::new();
            let mut reads = Vec::new();
            let mut take = |batch: &mut Batch| {
                prop_assert!(batch.lines.len() <= BATCH_LINES);
                prop_assert!(batch.failed.is_none());
                reads.push(batch.read);
                seen.extend(batch.lines.iter().map(|line| format!("{line:?}")));
                Ok(())
            };
            let mut failure = None;
            let mut deliver = |batch: &mut Batch| match take(batch) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            };
            if ahead {
                decode_ahead(input, &decoder, &mut deliver);
            } else {
                decode_input(input, &decoder, |mut batch| deliver(&mut batch));
            }
            if let Some(e) = failure {
                return Err(e);
            }
            prop_assert_eq!(seen, line_by_line(&decoder, &bytes));
            prop_assert!(reads.windows(2).all(|w| w[0] <= w[1]), "progress goes backwards: {:?}", reads);
            prop_assert_eq!(reads.last().copied(), Some(bytes.len() as u64));
        }
    }
}
