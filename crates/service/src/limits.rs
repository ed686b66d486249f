//! Limits checked before validation, in one pass over the params text: size,
//! nesting depth, string and array lengths, and keys that must never reach a
//! worker.
//!
//! The pass either builds the `Value` tree that validation needs, or (for
//! methods without a schema) only scans, allocating nothing. It stops at the
//! first limit broken: limits protect the process from hostile input, so
//! there is no point in reading on. The path of the offending value is built
//! only when a limit is broken, while the parse unwinds, so a valid request
//! pays nothing for it.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroUsize;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Violation;
use crate::violation::push_pointer;

/// Keys rejected when [`ProtoKeys::Reject`] is set. They are harmless in
/// Python, but a JavaScript consumer of the same data (the original system
/// was one) can be attacked through them, and no method of the catalog
/// takes them.
pub const FORBIDDEN_KEYS: [&str; 3] = ["__proto__", "constructor", "prototype"];

/// Whether the keys in [`FORBIDDEN_KEYS`] are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProtoKeys {
    /// Reject params that contain them anywhere (the default). The original
    /// system dropped them silently, which hid the problem from the caller.
    #[default]
    Reject,
    /// Let them through like any other key.
    Allow,
}

/// The limits checked before validation. Build them with
/// [`ServiceConfigBuilder`](crate::ServiceConfigBuilder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest params text, in bytes.
    pub max_params_bytes: NonZeroUsize,
    /// Deepest nesting of objects and arrays; the params object itself is depth 1.
    pub max_depth: NonZeroUsize,
    /// Longest string or object key, in UTF-8 bytes after unescaping.
    pub max_string_bytes: NonZeroUsize,
    /// Most items in one array.
    pub max_array_len: NonZeroUsize,
    /// What to do with `__proto__`, `constructor` and `prototype` keys.
    pub proto_keys: ProtoKeys,
}

impl Limits {
    /// Default [`max_params_bytes`](Self::max_params_bytes): 4 MiB.
    pub const DEFAULT_MAX_PARAMS_BYTES: usize = 4 << 20;
    /// Default [`max_depth`](Self::max_depth): 64.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// Largest accepted [`max_depth`](Self::max_depth): the JSON parser
    /// itself stops at 128 levels, and the limit must be the one that
    /// reports the problem.
    pub const MAX_DEPTH_CEILING: usize = 100;
    /// Default [`max_string_bytes`](Self::max_string_bytes): 1 MiB.
    pub const DEFAULT_MAX_STRING_BYTES: usize = 1 << 20;
    /// Default [`max_array_len`](Self::max_array_len): 100 000.
    pub const DEFAULT_MAX_ARRAY_LEN: usize = 100_000;
}

impl Default for Limits {
    fn default() -> Self {
        let nz = |n: usize| NonZeroUsize::new(n).expect("the default limits are not zero");
        Self {
            max_params_bytes: nz(Self::DEFAULT_MAX_PARAMS_BYTES),
            max_depth: nz(Self::DEFAULT_MAX_DEPTH),
            max_string_bytes: nz(Self::DEFAULT_MAX_STRING_BYTES),
            max_array_len: nz(Self::DEFAULT_MAX_ARRAY_LEN),
            proto_keys: ProtoKeys::Reject,
        }
    }
}

/// Checks `raw` against the limits and returns its tree (`BUILD`) or
/// `Value::Null` (scan only).
pub(crate) fn parse<const BUILD: bool>(
    raw: &RawValue,
    limits: &Limits,
) -> Result<Value, Violation> {
    let text = raw.get();
    if text.len() > limits.max_params_bytes.get() {
        return Err(Violation::new(
            "",
            "maxParamsBytes",
            format!(
                "params are {} bytes long, more than the limit of {} bytes",
                text.len(),
                limits.max_params_bytes
            ),
        ));
    }
    match text.trim_start().as_bytes().first() {
        Some(b'{' | b'[') => {}
        _ => {
            return Err(Violation::new(
                "",
                "structured",
                "params must be an object or an array",
            ));
        }
    }
    // Most params are well within every limit: a byte scan proves that at
    // memory speed. Only when it cannot (something may be over a limit) does
    // the parse below run, to find and name the violation exactly.
    if !BUILD && within_limits(text.as_bytes(), limits) {
        return Ok(Value::Null);
    }
    let mut state = State {
        limits,
        depth: 0,
        broken: None,
        path_rev: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Node::<BUILD> { state: &mut state }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => Err(match state.broken.take() {
            Some((keyword, message)) => {
                let mut pointer = String::new();
                for segment in state.path_rev.iter().rev() {
                    push_pointer(&mut pointer, segment);
                }
                Violation::new(pointer, keyword, message)
            }
            // A `RawValue` is valid JSON, so only the parser's own recursion
            // limit can get here, and the depth limit is below it.
            None => Violation::new("", "maxDepth", error.to_string()),
        }),
    }
}

/// Whether `text`, which is valid JSON (it comes from a `RawValue`), is
/// certainly within the limits. `false` means "maybe not": a string with
/// escapes that may be short enough once unescaped, an escaped key that may
/// spell a forbidden one, or a real violation; the exact parse decides.
fn within_limits(text: &[u8], limits: &Limits) -> bool {
    /// One open object or array: its item count (arrays) and whether the
    /// next string is a key (objects). Small, because the whole stack is
    /// zeroed at every call, before the first byte.
    #[derive(Clone, Copy, Default)]
    struct Open {
        array: bool,
        expect_key: bool,
        commas: u32,
    }
    /// Nesting the scan follows on the stack, without allocating; deeper
    /// params (rare) are left to the exact parse.
    const SCANNED_DEPTH: usize = 32;
    /// The open objects and arrays, innermost last.
    struct Stack {
        open: [Open; SCANNED_DEPTH],
        len: usize,
    }
    impl Stack {
        fn last_mut(&mut self) -> Option<&mut Open> {
            let top = self.len.checked_sub(1)?;
            self.open.get_mut(top)
        }
    }
    let max_depth = limits.max_depth.get();
    let mut stack = Stack {
        open: [Open::default(); SCANNED_DEPTH],
        len: 0,
    };
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                loop {
                    let Some(at) = memchr::memchr2(b'"', b'\\', &text[j..]) else {
                        return false;
                    };
                    j += at;
                    if text[j] == b'"' {
                        break;
                    }
                    escaped = true;
                    j += 2;
                }
                let body = &text[start..j];
                if body.len() > limits.max_string_bytes.get() {
                    return false;
                }
                if let Some(open) = stack.last_mut()
                    && !open.array
                    && open.expect_key
                {
                    open.expect_key = false;
                    if limits.proto_keys == ProtoKeys::Reject
                        && (escaped || FORBIDDEN_KEYS.iter().any(|k| k.as_bytes() == body))
                    {
                        return false;
                    }
                }
                i = j + 1;
                continue;
            }
            b'{' | b'[' => {
                if stack.len == max_depth {
                    return false;
                }
                let Some(slot) = stack.open.get_mut(stack.len) else {
                    return false;
                };
                let array = text[i] == b'[';
                *slot = Open {
                    array,
                    commas: 0,
                    expect_key: !array,
                };
                stack.len += 1;
            }
            b'}' | b']' => {
                stack.len = stack.len.saturating_sub(1);
            }
            b',' => {
                if let Some(open) = stack.last_mut() {
                    if open.array {
                        open.commas = open.commas.saturating_add(1);
                        if usize::try_from(open.commas)
                            .map_or(true, |n| n >= limits.max_array_len.get())
                        {
                            return false;
                        }
                    } else {
                        open.expect_key = true;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

struct State<'l> {
    limits: &'l Limits,
    depth: usize,
    broken: Option<(&'static str, String)>,
    /// Path segments of the offending value, innermost first, pushed while
    /// the parse unwinds after a limit was broken.
    path_rev: Vec<String>,
}

impl State<'_> {
    fn fail<E: de::Error>(&mut self, keyword: &'static str, message: String) -> E {
        self.broken = Some((keyword, message));
        E::custom(LimitBroken)
    }

    fn check_string<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        if len > self.limits.max_string_bytes.get() {
            let limit = self.limits.max_string_bytes;
            return Err(self.fail(
                "maxStringBytes",
                format!("string is {len} bytes long, more than the limit of {limit} bytes"),
            ));
        }
        Ok(())
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.depth += 1;
        if self.depth > self.limits.max_depth.get() {
            let limit = self.limits.max_depth;
            return Err(self.fail(
                "maxDepth",
                format!("objects and arrays are nested more than {limit} levels deep"),
            ));
        }
        Ok(())
    }
}

/// The marker error that aborts the parse; the real reason is in `State`.
struct LimitBroken;

impl fmt::Display for LimitBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("limit broken")
    }
}

struct Node<'s, 'l, const BUILD: bool> {
    state: &'s mut State<'l>,
}

impl<'de, const BUILD: bool> DeserializeSeed<'de> for Node<'_, '_, BUILD> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, const BUILD: bool> Visitor<'de> for Node<'_, '_, BUILD> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(if BUILD { Value::Bool(v) } else { Value::Null })
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(if BUILD { Value::from(v) } else { Value::Null })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(if BUILD { Value::from(v) } else { Value::Null })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell a non-finite number, so `from_f64` succeeds.
        Ok(if BUILD {
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
        } else {
            Value::Null
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.check_string(v.len())?;
        Ok(if BUILD {
            Value::String(v.to_owned())
        } else {
            Value::Null
        })
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.check_string(v.len())?;
        Ok(if BUILD { Value::String(v) } else { Value::Null })
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let state = self.state;
        state.enter()?;
        let mut items = Vec::new();
        let mut index = 0usize;
        loop {
            if index == state.limits.max_array_len.get() {
                // One more item would break the limit; look before reading it.
                match seq.next_element::<de::IgnoredAny>() {
                    Ok(None) => break,
                    Ok(Some(_)) | Err(_) => {
                        let limit = state.limits.max_array_len;
                        return Err(state.fail(
                            "maxArrayLength",
                            format!("array has more than {limit} items"),
                        ));
                    }
                }
            }
            match seq.next_element_seed(Node::<BUILD> { state: &mut *state }) {
                Ok(Some(item)) => {
                    if BUILD {
                        items.push(item);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    if state.broken.is_some() {
                        state.path_rev.push(index.to_string());
                    }
                    return Err(error);
                }
            }
            index += 1;
        }
        state.depth -= 1;
        Ok(if BUILD {
            Value::Array(items)
        } else {
            Value::Null
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let state = self.state;
        state.enter()?;
        let mut object = Map::new();
        loop {
            let key = match map.next_key_seed(Key { state: &mut *state }) {
                Ok(Some(key)) => key,
                Ok(None) => break,
                Err(error) => return Err(error),
            };
            match map.next_value_seed(Node::<BUILD> { state: &mut *state }) {
                Ok(value) => {
                    if BUILD {
                        object.insert(key.into_owned(), value);
                    }
                }
                Err(error) => {
                    if state.broken.is_some() {
                        state.path_rev.push(key.into_owned());
                    }
                    return Err(error);
                }
            }
        }
        state.depth -= 1;
        Ok(if BUILD {
            Value::Object(object)
        } else {
            Value::Null
        })
    }
}

/// An object key, checked for length and forbidden names. Borrowed from the
/// text when it has no escapes, so a scan allocates nothing.
struct Key<'s, 'l> {
    state: &'s mut State<'l>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Key<'_, '_> {
    fn check<E: de::Error>(&mut self, key: &str) -> Result<(), E> {
        self.state.check_string(key.len()).inspect_err(|_| {
            self.state.path_rev.push(key.to_owned());
        })?;
        if self.state.limits.proto_keys == ProtoKeys::Reject && FORBIDDEN_KEYS.contains(&key) {
            self.state.path_rev.push(key.to_owned());
            return Err(self
                .state
                .fail("forbiddenKey", format!("key `{key}` is not allowed")));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<Self::Value, E> {
        self.check(v)?;
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Self::Value, E> {
        self.check(v)?;
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Self::Value, E> {
        self.check(&v)?;
        Ok(Cow::Owned(v))
    }
}
