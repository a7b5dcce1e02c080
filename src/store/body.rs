//! Message bytes as they travel between stores: a small message is held in memory, a big one
//! stays in a file (a spool file the IMAP driver fills a chunk at a time, or the Maildir
//! message file itself) and is read back a chunk at a time, so no big message is ever whole
//! in memory. What a store is asked to store is either bytes in memory or a
//! [`BodySource`]: a reader of the (converted) message produced on the fly.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages larger than this are fetched in chunks of this size and kept in a file rather
/// than in memory (well below the default BufferLimit of 10 MiB).
pub const STREAM_CHUNK: u64 = 1024 * 1024;

/// How much of a file body is read at once when it is copied or converted.
pub const READ_CHUNK: usize = 256 * 1024;

/// The bytes of a fetched message.
#[derive(Debug)]
pub enum MessageBody {
    /// Held in memory (messages up to [`STREAM_CHUNK`]).
    Memory(Vec<u8>),
    /// In a file, read a chunk at a time.
    File(BodyFile),
}

/// A message in a file: the first `len` bytes of `file`.
#[derive(Debug)]
pub struct BodyFile {
    file: File,
    len: u64,
    /// Where the bytes are, for error messages.
    path: PathBuf,
}

impl BodyFile {
    /// A message that is a file of its own (a Maildir message), read where it is.
    pub fn existing(file: File, len: u64, path: PathBuf) -> BodyFile {
        BodyFile { file, len, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MessageBody {
    pub fn len(&self) -> u64 {
        match self {
            MessageBody::Memory(data) => data.len() as u64,
            MessageBody::File(file) => file.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the body held in memory (what counts against a read-ahead limit).
    pub fn memory_bytes(&self) -> u64 {
        match self {
            MessageBody::Memory(data) => data.len() as u64,
            MessageBody::File(_) => 0,
        }
    }

    /// Reads bytes at `offset` into `buf`; 0 at the end.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len().saturating_sub(offset);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        match self {
            MessageBody::Memory(data) => {
                let start = offset as usize;
                buf[..want].copy_from_slice(&data[start..start + want]);
                Ok(want)
            }
            MessageBody::File(body) => {
                let got = body.file.read_at(&mut buf[..want], offset)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} is shorter than {} bytes", body.path.display(), body.len),
                    ));
                }
                Ok(got)
            }
        }
    }

    /// The whole body in memory (small messages, tests, debug output).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        match self {
            MessageBody::Memory(data) => Ok(data.clone()),
            MessageBody::File(_) => {
                let mut out = Vec::new();
                BodyReader::new(self).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// Where the bytes are, for error messages.
    pub fn describe(&self) -> String {
        match self {
            MessageBody::Memory(_) => "message in memory".to_string(),
            MessageBody::File(file) => file.path.display().to_string(),
        }
    }
}

/// Reads a [`MessageBody`] from its start.
pub struct BodyReader<'a> {
    body: &'a MessageBody,
    offset: u64,
}

impl<'a> BodyReader<'a> {
    pub fn new(body: &'a MessageBody) -> BodyReader<'a> {
        BodyReader { body, offset: 0 }
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.body.read_at(self.offset, buf)?;
        self.offset += got as u64;
        Ok(got)
    }
}

/// A message to store that is produced on the fly (a big message, converted as it is read).
pub trait BodySource {
    /// Bytes the reader produces in all (may read the source through once to learn it).
    fn len(&self) -> io::Result<u64>;
    /// The reader produces nothing.
    fn is_empty(&self) -> io::Result<bool> {
        self.len().map(|len| len == 0)
    }
    /// The produced bytes contain NUL (IMAP: a binary literal is needed).
    fn contains_nul(&self) -> io::Result<bool>;
    /// A reader of the bytes, from the start (may be called more than once).
    fn reader(&self) -> Box<dyn Read + '_>;
}

/// The bytes of a message to store.
#[derive(Clone, Copy)]
pub enum MessageData<'a> {
    Bytes(&'a [u8]),
    Stream(&'a dyn BodySource),
}

impl std::fmt::Debug for MessageData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageData::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            MessageData::Stream(source) => write!(f, "Stream({} bytes)", source.len().unwrap_or(0)),
        }
    }
}

impl MessageData<'_> {
    /// The size (for messages and traces; a stream that cannot be read shows 0).
    pub fn len(&self) -> u64 {
        match self {
            MessageData::Bytes(bytes) => bytes.len() as u64,
            MessageData::Stream(source) => source.len().unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole message in memory (for stores that keep messages in memory, and tests).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        match self {
            MessageData::Bytes(bytes) => Ok(bytes.to_vec()),
            MessageData::Stream(source) => {
                let mut out = Vec::new();
                source.reader().read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// Writes the message into `sink` a chunk at a time.
    pub fn write_to(&self, sink: &mut dyn io::Write) -> io::Result<()> {
        match self {
            MessageData::Bytes(bytes) => sink.write_all(bytes),
            MessageData::Stream(source) => {
                let mut reader = source.reader();
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    let got = reader.read(&mut buf)?;
                    if got == 0 {
                        return Ok(());
                    }
                    sink.write_all(&buf[..got])?;
                }
            }
        }
    }
}

/// A spool file being filled with a message fetched in chunks. It is unlinked as soon as it
/// is created, so it never shows in its directory (nothing is left behind by a crash) and
/// its space is freed when the last handle closes.
#[derive(Debug)]
pub struct Spool {
    file: File,
    path: PathBuf,
    /// One past the last byte written.
    end: u64,
}

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// Creates an (already unlinked) spool file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        loop {
            let number = SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".mailsync-spool-{}-{number}", std::process::id()));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    std::fs::remove_file(&path)?;
                    return Ok(Spool { file, path, end: 0 });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        self.end = self.end.max(offset + data.len() as u64);
        Ok(())
    }

    /// The spooled message: its first `len` bytes.
    pub fn into_body(self, len: u64) -> MessageBody {
        MessageBody::File(BodyFile {
            file: self.file,
            len,
            path: self.path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_is_unlinked_and_reads_back() {
        let dir = std::env::temp_dir();
        let mut spool = Spool::create(&dir).expect("spool");
        assert!(!spool.path().exists(), "the spool file is unlinked at once");
        spool.write_at(3, b"def").expect("write");
        spool.write_at(0, b"abc").expect("write");
        let body = spool.into_body(6);
        assert_eq!(body.len(), 6);
        assert_eq!(body.memory_bytes(), 0);
        assert_eq!(body.to_vec().expect("read"), b"abcdef");
        let mut buf = [0u8; 4];
        assert_eq!(body.read_at(4, &mut buf).expect("read"), 2);
        assert_eq!(&buf[..2], b"ef");
    }
}
