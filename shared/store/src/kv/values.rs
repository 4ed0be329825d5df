//! How values are stored: JSON, zlib-compressed above 4 KB.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decompress_json, from_json};

use super::{KvRead, KvWrite};
use crate::{StoreError, StoreResult};

/// Values above this are stored zlib-compressed (plans and their V2 definitions:
/// tens of MB of JSON for a 10,000-step scenario, a few MB compressed).
pub(super) const COMPRESS_ABOVE: usize = 4 * 1024;

/// A stored value: JSON, or zlib-compressed JSON (a zlib stream starts with
/// 0x78, which no JSON text does).
pub(super) fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    if bytes.first() == Some(&0x78) {
        decompress_json(bytes)
    } else {
        from_json(bytes)
    }
}

pub(super) fn load<T: DeserializeOwned>(kv: &dyn KvRead, key: &str) -> StoreResult<Option<T>> {
    kv.get(key)?.map(|bytes| decode_value(&bytes)).transpose()
}

pub(super) fn save<T: Serialize>(kv: &mut dyn KvWrite, key: &str, value: &T) -> StoreResult<()> {
    let mut out =
        std::io::BufWriter::with_capacity(64 * 1024, CompressingBuffer::Plain(Vec::new()));
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Unexpected(format!("encode: {e}")))?;
    let out = out
        .into_inner()
        .map_err(|e| StoreError::Unexpected(format!("encode: {e}")))?;
    kv.put(key, out.finish()?)
}

/// JSON as it is written (in 64 KB chunks, through a `BufWriter`: serde writes
/// tiny fragments, which deflate handles badly): plain while small,
/// zlib-compressed as soon as it passes [`COMPRESS_ABOVE`] — so a 100 MB plan is
/// never held uncompressed.
pub(super) enum CompressingBuffer {
    Plain(Vec<u8>),
    Compressed(flate2::write::ZlibEncoder<Vec<u8>>),
}

impl std::io::Write for CompressingBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            CompressingBuffer::Plain(plain) => {
                plain.extend_from_slice(bytes);
                if plain.len() > COMPRESS_ABOVE {
                    let mut encoder =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(plain)?;
                    *self = CompressingBuffer::Compressed(encoder);
                }
                Ok(bytes.len())
            }
            CompressingBuffer::Compressed(encoder) => encoder.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CompressingBuffer {
    fn finish(self) -> StoreResult<Vec<u8>> {
        match self {
            CompressingBuffer::Plain(plain) => Ok(plain),
            CompressingBuffer::Compressed(encoder) => encoder
                .finish()
                .map_err(|e| StoreError::Unexpected(format!("compress: {e}"))),
        }
    }
}

pub(super) fn conflict(msg: &str) -> StoreError {
    StoreError::Conflict(msg.to_owned())
}
