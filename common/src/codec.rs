//! Versioned binary encoding of stored values and RPC payloads: one version byte,
//! then bincode 2 (serde, standard config).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Current encoding version of a single value.
pub const VALUE_VERSION: u8 = 1;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Empty input.
    #[error("empty value")]
    Empty,
    /// Written by a newer encoding this build does not know.
    #[error("value encoding version {0} is newer than this build supports ({VALUE_VERSION})")]
    UnknownVersion(u8),
    /// Bytes do not decode as the expected type.
    #[error("corrupt value: {0}")]
    Corrupt(String),
}

/// Encodes `value` with the version header.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![VALUE_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != VALUE_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let (value, used) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Corrupt(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}
