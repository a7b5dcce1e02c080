//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE in both directions once the server accepted
//! `COMPRESS DEFLATE`. Sans-I/O: bytes in, bytes out; the connection does the reading and
//! writing. What the client sends is flushed at the end of every write (a sync flush), so
//! the server can act on each command as soon as it arrives.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The compression state of one connection (one stream each way).
pub struct Deflate {
    outgoing: Compress,
    incoming: Decompress,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("sent_in", &self.outgoing.total_in())
            .field("sent_out", &self.outgoing.total_out())
            .field("received_in", &self.incoming.total_in())
            .field("received_out", &self.incoming.total_out())
            .finish()
    }
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            // Level 1: commands are small; an uploaded message goes out at link speed rather
            // than at the compressor's.
            outgoing: Compress::new(Compression::fast(), false),
            incoming: Decompress::new(false),
        }
    }
}

impl Deflate {
    /// Appends the compressed form of `input` to `out`, flushed so that the peer can
    /// decompress all of it now.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let start = self.outgoing.total_in();
        loop {
            let consumed = (self.outgoing.total_in() - start) as usize;
            out.reserve(input.len() - consumed + 64);
            let produced_before = self.outgoing.total_out();
            self.outgoing
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|error| error.to_string())?;
            let consumed = (self.outgoing.total_in() - start) as usize;
            // Done when all input went in and the flush fitted in the room it had.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if consumed == input.len() && self.outgoing.total_out() == produced_before {
                return Ok(());
            }
        }
    }

    /// Appends what `input` decompresses to to `out` (all of `input` is taken in; a
    /// DEFLATE block cut by the read is finished by the next call).
    pub fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let start = self.incoming.total_in();
        loop {
            let consumed = (self.incoming.total_in() - start) as usize;
            out.reserve((input.len() - consumed) * 4 + 4096);
            let produced_before = self.incoming.total_out();
            let status = self
                .incoming
                .decompress_vec(&input[consumed..], out, FlushDecompress::None)
                .map_err(|error| error.to_string())?;
            let consumed_now = (self.incoming.total_in() - start) as usize;
            if status == Status::StreamEnd {
                return if consumed_now == input.len() {
                    Ok(())
                } else {
                    Err("data after the end of the compressed stream".to_string())
                };
            }
            let progress = consumed_now != consumed || self.incoming.total_out() != produced_before;
            if consumed_now == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if !progress {
                return Err("the compressed stream does not advance".to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(size: usize) -> Vec<u8> {
        let mut state = 12345u32;
        (0..size)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 {
                    (state >> 24) as u8
                } else {
                    b"From: someone\r\nSubject: text\r\n"[i % 30]
                }
            })
            .collect()
    }

    #[test]
    fn what_one_side_compresses_the_other_side_gets_back_in_any_pieces() {
        let mut sender = Deflate::default();
        let mut receiver = Deflate::default();
        let messages = [
            sample(10),
            sample(70_000),
            b"3 LOGOUT\r\n".to_vec(),
            sample(1),
        ];
        for message in &messages {
            let mut wire = Vec::new();
            sender.compress(message, &mut wire).unwrap();
            // Fed to the receiver in odd pieces, as reads would cut it.
            let mut got = Vec::new();
            for piece in wire.chunks(777) {
                receiver.decompress(piece, &mut got).unwrap();
            }
            assert_eq!(&got, message);
        }
    }

    #[test]
    fn a_flushed_write_decompresses_without_waiting_for_more() {
        let mut sender = Deflate::default();
        let mut receiver = Deflate::default();
        let mut wire = Vec::new();
        sender.compress(b"4 NOOP\r\n", &mut wire).unwrap();
        let mut got = Vec::new();
        receiver.decompress(&wire, &mut got).unwrap();
        assert_eq!(got, b"4 NOOP\r\n");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut receiver = Deflate::default();
        let mut got = Vec::new();
        let error = receiver
            .decompress(b"\xff\xff\xff\xff garbage", &mut got)
            .unwrap_err();
        assert!(!error.is_empty());
    }
}
