//! The `{data, metadata}` result envelope some framework servers use,
//! decoded by hand because `RawValue` does not work through serde's
//! untagged enums.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A result split into its payload and the envelope's metadata.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    pub(crate) data: &'a RawValue,
    pub(crate) metadata: Option<&'a RawValue>,
}

/// Splits `raw` if it is an envelope: an object with a `data` member and no
/// member other than `data` and `metadata`. `data` is taken as it is, even
/// when it is `0`, `""`, `false` or `null` (the original replaced a falsy
/// `data` by the whole envelope). A `null` metadata counts as absent.
/// Anything else is not an envelope, and `None` is returned.
pub(crate) fn split(raw: &RawValue) -> Option<Split<'_>> {
    let text = raw.get();
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de.deserialize_map(EnvelopeVisitor).ok()??;
    Some(found)
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Option<Split<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        let mut metadata = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "data" if data.is_none() => data = Some(map.next_value::<&'de RawValue>()?),
                "metadata" if metadata.is_none() => {
                    metadata = Some(map.next_value::<&'de RawValue>()?);
                }
                _ => {
                    // Not an envelope; stop reading.
                    map.next_value::<IgnoredAny>()?;
                    return Ok(None);
                }
            }
        }
        Ok(data.map(|data| Split {
            data,
            metadata: metadata.filter(|m| m.get().trim() != "null"),
        }))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
