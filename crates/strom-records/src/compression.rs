//! Compressing and decompressing a batch's records section for each Kafka codec, with a
//! hard bound on decompressed bytes (a compression bomb stops with an error, not an OOM).
//!
//! Decompression is streaming: [`decoder`] gives a [`Read`] over the plain records that
//! holds at most one codec block (gzip's 32 KiB window, an lz4 block of at most 4 MiB, a
//! zstd window as the frame declares it up to 2^27, one snappy block), never the whole
//! section. Compression is streaming too ([`Encoder`]).

use std::io::{Read, Write};

use crate::error::RecordsError;
use crate::header::Compression;

/// xerial snappy-java stream header: magic, then version and compatible version (1, 1).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's default block size (what the Java producer writes).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// zstd's default window limit, as zstd-jni uses: any frame Java reads, we read.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Kafka's default zstd level.
const ZSTD_LEVEL: i32 = 3;

/// Compresses an encoded records section with `codec`, as the Java producer frames it.
pub(crate) fn compress(codec: Compression, plain: &[u8]) -> Result<Vec<u8>, RecordsError> {
    if codec == Compression::Zstd {
        // One frame that states its content size (the streaming encoder cannot).
        return zstd::bulk::compress(plain, ZSTD_LEVEL).map_err(|e| compress_failed(codec, &e));
    }
    let mut encoder = Encoder::new(codec, Vec::new())?;
    encoder.write_all(plain)?;
    encoder.finish()
}

/// Decompresses a records section (or any payload Kafka's codecs frame the same way, such
/// as KIP-714 client telemetry), failing once the output would pass `bytes_max`.
pub fn decompress(
    codec: Compression,
    payload: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, RecordsError> {
    if codec == Compression::None {
        if payload.len() > bytes_max {
            return Err(too_large(bytes_max));
        }
        return Ok(payload.to_vec());
    }
    let reader = decoder(codec, payload, bytes_max)?;
    let mut out = Vec::new();
    let read_max = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    // Reads at most `bytes_max + 1` bytes so that an oversized stream is detected without
    // ever buffering more than the limit.
    reader
        .take(read_max)
        .read_to_end(&mut out)
        .map_err(|e| io_failed(codec.name(), &e, bytes_max))?;
    if out.len() > bytes_max {
        return Err(too_large(bytes_max));
    }
    Ok(out)
}

/// A streaming reader of the plain records inside `payload`. The caller bounds the bytes it
/// takes (see [`crate::walk`]); `bytes_max` bounds what a single snappy block may claim
/// before it is allocated.
pub(crate) fn decoder<'a>(
    codec: Compression,
    payload: &'a [u8],
    bytes_max: usize,
) -> Result<Box<dyn Read + 'a>, RecordsError> {
    Ok(match codec {
        Compression::None => Box::new(payload),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(payload)),
        Compression::Snappy => Box::new(SnappyReader::new(payload, bytes_max)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(payload)),
        Compression::Zstd => {
            let failed = |e: std::io::Error| io_failed(codec.name(), &e, bytes_max);
            let mut reader = zstd::stream::read::Decoder::with_buffer(payload).map_err(failed)?;
            reader.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(failed)?;
            Box::new(reader)
        }
    })
}

/// A streaming compressor writing the Java producer's framing for `codec`.
pub(crate) enum Encoder {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Snappy(Box<SnappyWriter>),
    Lz4(lz4_flex::frame::FrameEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// Starts a compressed stream appended to `out` (which may already hold bytes, e.g. a
    /// batch header).
    pub fn new(codec: Compression, out: Vec<u8>) -> Result<Encoder, RecordsError> {
        Ok(match codec {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Compression::Snappy => Encoder::Snappy(Box::new(SnappyWriter::new(out))),
            Compression::Lz4 => {
                // Kafka's Lz4BlockOutputStream: 64 KiB independent blocks, no checksums.
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .block_checksums(false)
                    .content_checksum(false);
                Encoder::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(info, out))
            }
            Compression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                    .map_err(|e| compress_failed(codec, &e))?,
            ),
        })
    }

    fn codec(&self) -> Compression {
        match self {
            Encoder::None(_) => Compression::None,
            Encoder::Gzip(_) => Compression::Gzip,
            Encoder::Snappy(_) => Compression::Snappy,
            Encoder::Lz4(_) => Compression::Lz4,
            Encoder::Zstd(_) => Compression::Zstd,
        }
    }

    pub fn write_all(&mut self, plain: &[u8]) -> Result<(), RecordsError> {
        let codec = self.codec();
        let written = match self {
            Encoder::None(out) => {
                out.extend_from_slice(plain);
                Ok(())
            }
            Encoder::Gzip(w) => w.write_all(plain),
            Encoder::Snappy(w) => w.write_all(plain),
            Encoder::Lz4(w) => w.write_all(plain),
            Encoder::Zstd(w) => w.write_all(plain),
        };
        written.map_err(|e| compress_failed(codec, &e))
    }

    /// Ends the stream; returns everything written, the bytes `out` held first included.
    pub fn finish(self) -> Result<Vec<u8>, RecordsError> {
        let codec = self.codec();
        let finished = match self {
            Encoder::None(out) => Ok(out),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Snappy(w) => w.finish(),
            Encoder::Lz4(w) => w.finish().map_err(std::io::Error::other),
            Encoder::Zstd(w) => w.finish(),
        };
        finished.map_err(|e| compress_failed(codec, &e))
    }
}

/// xerial framing: header, then blocks of (u32 big-endian length, raw snappy block), each
/// block compressing at most [`XERIAL_BLOCK_BYTES`] of input.
pub(crate) struct SnappyWriter {
    out: Vec<u8>,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl SnappyWriter {
    fn new(mut out: Vec<u8>) -> SnappyWriter {
        out.extend_from_slice(XERIAL_HEADER);
        SnappyWriter {
            out,
            pending: Vec::with_capacity(XERIAL_BLOCK_BYTES),
            encoder: snap::raw::Encoder::new(),
        }
    }

    fn write_all(&mut self, mut plain: &[u8]) -> std::io::Result<()> {
        while !plain.is_empty() {
            let room = XERIAL_BLOCK_BYTES - self.pending.len();
            let (now, later) = plain.split_at(room.min(plain.len()));
            self.pending.extend_from_slice(now);
            plain = later;
            if self.pending.len() == XERIAL_BLOCK_BYTES {
                self.emit()?;
            }
        }
        Ok(())
    }

    fn emit(&mut self) -> std::io::Result<()> {
        let block = self
            .encoder
            .compress_vec(&self.pending)
            .map_err(std::io::Error::other)?;
        let block_len = u32::try_from(block.len()).map_err(std::io::Error::other)?;
        self.out.extend_from_slice(&block_len.to_be_bytes());
        self.out.extend_from_slice(&block);
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Vec<u8>> {
        if !self.pending.is_empty() {
            self.emit()?;
        }
        Ok(self.out)
    }
}

/// Reads xerial framing, or raw snappy when the xerial magic is absent (as snappy-java
/// does; librdkafka sends raw snappy), one block at a time. A block's claimed size is
/// checked against what is left of the budget before anything is allocated for it.
struct SnappyReader<'a> {
    /// Input not yet decoded (after the xerial header); for raw snappy, the one block.
    /// `None`: a xerial stream too short for its header.
    rest: Option<&'a [u8]>,
    xerial: bool,
    block: Vec<u8>,
    position: usize,
    budget_bytes: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(payload: &'a [u8], budget_bytes: usize) -> SnappyReader<'a> {
        let xerial = payload.starts_with(XERIAL_MAGIC);
        // As snappy-java: the 16-byte header (magic, version, compatible version) is
        // skipped whatever its version fields say.
        let rest = if xerial {
            payload.get(XERIAL_HEADER.len()..)
        } else {
            Some(payload)
        };
        SnappyReader {
            rest,
            xerial,
            block: Vec::new(),
            position: 0,
            budget_bytes,
        }
    }

    /// Decodes the next block into `self.block`; false at the end of the input.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let rest = self
            .rest
            .ok_or_else(|| snappy_error("truncated xerial header"))?;
        if rest.is_empty() {
            return Ok(false);
        }
        let block = if self.xerial {
            let (len_bytes, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| snappy_error("truncated block length"))?;
            let block_len = usize::try_from(u32::from_be_bytes(*len_bytes))
                .map_err(|_| snappy_error("block length out of range"))?;
            let block = tail
                .get(..block_len)
                .ok_or_else(|| snappy_error("truncated block"))?;
            self.rest = Some(tail.get(block_len..).unwrap_or_default());
            block
        } else {
            self.rest = Some(&[]);
            rest
        };
        let block_bytes = snap::raw::decompress_len(block).map_err(std::io::Error::other)?;
        if block_bytes > self.budget_bytes {
            return Err(std::io::Error::other(BudgetExceeded));
        }
        self.budget_bytes -= block_bytes;
        self.block.clear();
        self.block.resize(block_bytes, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(std::io::Error::other)?;
        self.block.truncate(written);
        self.position = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let available = self.block.get(self.position..).unwrap_or_default();
        let n = available.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), available.get(..n)) {
            to.copy_from_slice(from);
        }
        self.position += n;
        Ok(n)
    }
}

/// A decoder asked for more than the decompression budget allows.
#[derive(Debug)]
struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed data exceeds the budget")
    }
}

impl std::error::Error for BudgetExceeded {}

pub(crate) fn too_large(limit_bytes: usize) -> RecordsError {
    RecordsError::DecompressedTooLarge { limit_bytes }
}

/// Maps a decoder's I/O error; a budget refusal inside a decoder becomes
/// [`RecordsError::DecompressedTooLarge`] for the budget `limit_bytes`.
pub(crate) fn io_failed(
    codec: &'static str,
    error: &std::io::Error,
    limit_bytes: usize,
) -> RecordsError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<BudgetExceeded>())
    {
        return too_large(limit_bytes);
    }
    RecordsError::Decompress {
        codec,
        message: error.to_string(),
    }
}

fn compress_failed(codec: Compression, error: &std::io::Error) -> RecordsError {
    RecordsError::Compress {
        codec: codec.name(),
        message: error.to_string(),
    }
}

fn snappy_error(message: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
