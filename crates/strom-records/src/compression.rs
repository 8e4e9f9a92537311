//! Compressing and decompressing a batch's records section for each Kafka codec, with a
//! hard bound on decompressed bytes (a compression bomb stops with an error, not an OOM).

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
    let failed = |e: std::io::Error| RecordsError::Compress {
        codec: codec.name(),
        message: e.to_string(),
    };
    match codec {
        Compression::None => Ok(plain.to_vec()),
        Compression::Gzip => gzip_compress(plain).map_err(failed),
        Compression::Snappy => snappy_compress(plain),
        Compression::Lz4 => lz4_compress(plain).map_err(failed),
        Compression::Zstd => zstd::bulk::compress(plain, ZSTD_LEVEL).map_err(failed),
    }
}

/// Decompresses a records section, failing once the output would pass `bytes_max`.
pub(crate) fn decompress(
    codec: Compression,
    payload: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, RecordsError> {
    let name = codec.name();
    match codec {
        Compression::None if payload.len() > bytes_max => Err(too_large(bytes_max)),
        Compression::None => Ok(payload.to_vec()),
        Compression::Gzip => {
            let reader = flate2::read::MultiGzDecoder::new(payload);
            read_bounded(name, reader, bytes_max)
        }
        Compression::Snappy => snappy_decompress(payload, bytes_max),
        Compression::Lz4 => {
            let reader = lz4_flex::frame::FrameDecoder::new(payload);
            read_bounded(name, reader, bytes_max)
        }
        Compression::Zstd => {
            let mut reader = zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| io_failed(name, &e))?;
            reader
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| io_failed(name, &e))?;
            read_bounded(name, reader, bytes_max)
        }
    }
}

/// Reads at most `bytes_max + 1` bytes so that an oversized stream is detected without
/// ever buffering more than the limit.
fn read_bounded(
    codec: &'static str,
    reader: impl Read,
    bytes_max: usize,
) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    let read_max = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(read_max)
        .read_to_end(&mut out)
        .map_err(|e| io_failed(codec, &e))?;
    if out.len() > bytes_max {
        return Err(too_large(bytes_max));
    }
    Ok(out)
}

fn gzip_compress(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain)?;
    encoder.finish()
}

fn lz4_compress(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    // Kafka's Lz4BlockOutputStream: 64 KiB independent blocks, no checksums, no size.
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder.write_all(plain)?;
    encoder.finish().map_err(std::io::Error::other)
}

/// xerial framing: header, then blocks of (u32 big-endian length, raw snappy block).
fn snappy_compress(plain: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let mut out = XERIAL_HEADER.to_vec();
    let mut encoder = snap::raw::Encoder::new();
    for chunk in plain.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| RecordsError::Compress {
                codec: "snappy",
                message: e.to_string(),
            })?;
        let block_len = u32::try_from(block.len()).map_err(|_| RecordsError::Compress {
            codec: "snappy",
            message: "block too large".to_string(),
        })?;
        out.extend_from_slice(&block_len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Reads xerial framing, or raw snappy when the xerial magic is absent (as snappy-java).
fn snappy_decompress(payload: &[u8], bytes_max: usize) -> Result<Vec<u8>, RecordsError> {
    if !payload.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        snappy_block_into(payload, &mut out, bytes_max)?;
        return Ok(out);
    }
    let mut rest = payload
        .get(XERIAL_HEADER.len()..)
        .ok_or_else(|| snappy_failed("truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| snappy_failed("truncated block length"))?;
        let block_len = usize::try_from(u32::from_be_bytes(*len_bytes))
            .map_err(|_| snappy_failed("block length out of range"))?;
        let block = tail
            .get(..block_len)
            .ok_or_else(|| snappy_failed("truncated block"))?;
        snappy_block_into(block, &mut out, bytes_max)?;
        rest = tail.get(block_len..).unwrap_or_default();
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its claimed size against the budget
/// before allocating for it.
fn snappy_block_into(
    block: &[u8],
    out: &mut Vec<u8>,
    bytes_max: usize,
) -> Result<(), RecordsError> {
    let block_bytes =
        snap::raw::decompress_len(block).map_err(|e| snappy_failed(&e.to_string()))?;
    let start = out.len();
    if start.saturating_add(block_bytes) > bytes_max {
        return Err(too_large(bytes_max));
    }
    out.resize(start + block_bytes, 0);
    let target = out.get_mut(start..).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(block, target)
        .map_err(|e| snappy_failed(&e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn too_large(limit_bytes: usize) -> RecordsError {
    RecordsError::DecompressedTooLarge { limit_bytes }
}

fn io_failed(codec: &'static str, error: &std::io::Error) -> RecordsError {
    RecordsError::Decompress {
        codec,
        message: error.to_string(),
    }
}

fn snappy_failed(message: &str) -> RecordsError {
    RecordsError::Decompress {
        codec: "snappy",
        message: message.to_string(),
    }
}
