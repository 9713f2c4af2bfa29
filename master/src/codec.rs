//! The masters' one binary encoding, for Raft messages between masters,
//! Raft log entries on disk and the state machine's values: postcard
//! (serde; varint integers; a format documented and kept stable by its
//! maintainers). Each of the three carries its own version (a byte before
//! every message and log entry, a format number for the whole state:
//! fsm/format.rs), so the next change of encoding can be rolled out.
//!
//! bincode 1 wrote all three before this module existed. It is
//! unmaintained (RUSTSEC-2025-0141), so nothing is written with it any
//! more; `legacy` only reads what it wrote: log entries of version 1 at
//! replay, and a state of format 1 once, when it is converted at start.

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    #[error("{0} bytes left over after the value")]
    Trailing(usize),
    #[error("bincode (legacy): {0}")]
    Legacy(#[from] bincode::Error),
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(v)?)
}

/// Appends `v` to `out` (after a version byte the caller wrote).
pub fn append<T: Serialize + ?Sized>(out: Vec<u8>, v: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_extend(v, out)?)
}

/// Exactly one value: bytes left over mean a torn or foreign encoding.
pub fn from_slice<T: DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, rest) = postcard::take_from_bytes(b)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(v)
}

/// How many bytes `v` encodes to, without encoding it.
pub fn size<T: Serialize + ?Sized>(v: &T) -> Result<usize, CodecError> {
    Ok(postcard::serialize_with_flavor(v, postcard::ser_flavors::Size::default())?)
}

/// Reading what bincode 1 wrote (fixint, little-endian: its defaults).
pub mod legacy {
    use super::CodecError;

    pub fn from_slice<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
        Ok(bincode::deserialize(b)?)
    }

    /// For tests that build data as an older binary wrote it.
    #[cfg(test)]
    pub fn to_vec<T: serde::Serialize>(v: &T) -> Vec<u8> {
        bincode::serialize(v).expect("bincode of a test value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct R {
        a: u64,
        name: Vec<u8>,
        o: Option<(i64, u32)>,
    }

    #[test]
    fn round_trips_sizes_and_refuses_leftovers() {
        let r = R { a: 300, name: b"x\xff".to_vec(), o: Some((-1, 7)) };
        let b = to_vec(&r).unwrap();
        assert_eq!(size(&r).unwrap(), b.len());
        assert_eq!(from_slice::<R>(&b).unwrap(), r);
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(from_slice::<R>(&longer), Err(CodecError::Trailing(1))));
        assert!(from_slice::<R>(&b[..b.len() - 1]).is_err(), "a torn value is an error");
        let old = legacy::to_vec(&r);
        assert_eq!(legacy::from_slice::<R>(&old).unwrap(), r);
        assert!(b.len() < old.len(), "varints: {} vs {} bytes", b.len(), old.len());
    }
}
