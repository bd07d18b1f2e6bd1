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
pub fn decode_ahead<R: io::Read + Send>(input: R, decoder: &Decoder, mut engine: impl FnMut(Batch) -> bool) {
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel::<Batch>(QUEUED_BATCHES);
        // Why the closure returns the send's result: when the engine stops
        // (the receiver is dropped), the decoder stops too.
        scope.spawn(move || decode_input(input, decoder, |batch| send.send(batch).is_ok()));
        for batch in receive {
            if !engine(batch) {
                break;
            }
        }
    });
}
