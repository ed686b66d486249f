//! A value as the tiers pass it along: its bytes and, for JSON the cache has
//! checked, the same text as a [`RawValue`], so that a memory hit hands out
//! checked JSON without reading it again.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

/// Checked JSON, shared. The box is the loader's own allocation, kept as it
/// is: an `Arc<RawValue>` would copy the text into a new one.
pub(crate) type Json = Arc<Box<RawValue>>;

/// What memory holds and every tier's hit carries.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// What disk and the shared tier write; for a JSON value, a view of the
    /// same text as `json`, not a copy.
    pub(crate) bytes: Bytes,
    pub(crate) json: Option<Json>,
}

impl Stored {
    pub(crate) fn bytes(bytes: Bytes) -> Self {
        Stored { bytes, json: None }
    }

    pub(crate) fn json(json: Box<RawValue>) -> Self {
        let json = Arc::new(json);
        Stored {
            bytes: Bytes::from_owner(JsonBytes(Arc::clone(&json))),
            json: Some(json),
        }
    }

    /// A value read back from disk or the shared tier of a cache that holds
    /// JSON: checked here, once, on its way into memory. `None` when it is
    /// not JSON, which such a cache treats as a corrupt entry.
    pub(crate) fn checked_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Box<RawValue>>(bytes)
            .ok()
            .map(Stored::json)
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Stored {}

/// The owner behind a JSON value's bytes.
struct JsonBytes(Json);

impl AsRef<[u8]> for JsonBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}
