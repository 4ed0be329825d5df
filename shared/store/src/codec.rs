//! Encodings shared by every backend: sortable key parts, pagination tokens,
//! JSON and compressed bodies.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{StoreError, StoreResult};

/// A timestamp as a fixed-width string whose byte order is time order.
pub(crate) fn time_key(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A scenario version as a fixed-width string whose byte order is numeric order
/// (negative versions never pass validation; they still sort first).
pub(crate) fn version_key(version: i64) -> String {
    format!("{:020}", (version as u64) ^ (1u64 << 63))
}

#[derive(Serialize, Deserialize)]
struct Token {
    /// The position: the last key returned.
    k: String,
    /// Which query the token belongs to.
    q: String,
}

/// An opaque pagination token: the last key returned, bound to its query.
pub(crate) fn encode_token(key: &str, query: &str) -> String {
    let token = Token {
        k: key.to_owned(),
        q: query.to_owned(),
    };
    // Serialising two strings cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The key inside a token, or `InvalidToken` if this store did not issue it for
/// this query.
pub(crate) fn decode_token(token: &str, query: &str) -> StoreResult<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| StoreError::InvalidToken)?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidToken)?;
    if token.q != query {
        return Err(StoreError::InvalidToken);
    }
    Ok(token.k)
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Unexpected(format!("encode: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unexpected(format!("decode: {e}")))
}

/// JSON, deflate-compressed.
pub(crate) fn compress_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<Vec<u8>> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    serde_json::to_writer(&mut encoder, value)
        .map_err(|e| StoreError::Unexpected(format!("encode: {e}")))?;
    encoder
        .finish()
        .map_err(|e| StoreError::Unexpected(format!("compress: {e}")))
}

pub(crate) fn decompress_json<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| StoreError::Unexpected(format!("decompress: {e}")))?;
    from_json(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_numerically() {
        assert!(version_key(2) < version_key(10));
        assert!(version_key(-1) < version_key(0));
    }

    #[test]
    fn tokens_are_bound_to_their_query() {
        let t = encode_token("a/b", "q1");
        assert_eq!(decode_token(&t, "q1").ok(), Some("a/b".to_owned()));
        assert!(matches!(
            decode_token(&t, "q2"),
            Err(StoreError::InvalidToken)
        ));
        assert!(matches!(
            decode_token("%%%", "q1"),
            Err(StoreError::InvalidToken)
        ));
    }

    #[test]
    fn compression_round_trips() {
        let v = vec!["x".repeat(1000); 10];
        let c = compress_json(&v).expect("compress");
        assert!(c.len() < 1000);
        let back: Vec<String> = decompress_json(&c).expect("decompress");
        assert_eq!(back, v);
    }
}
