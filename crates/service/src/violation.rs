//! One reason why params (or a result) were rejected, with where and why.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest message kept in a [`Violation`]; longer ones are cut, so that an
/// error never echoes a large payload back to the caller or into logs.
const MAX_MESSAGE_CHARS: usize = 300;

/// One rule that params (or a result) broke.
///
/// The JSON Schema keywords (`type`, `required`, `maximum`, ...) come from the
/// method's schema. The checks made before validation use their own keywords:
///
/// | keyword | check |
/// |---|---|
/// | `maxParamsBytes` | the params text is longer than the limit |
/// | `maxDepth` | objects and arrays are nested deeper than the limit |
/// | `maxStringBytes` | a string (or an object key) is longer than the limit |
/// | `maxArrayLength` | an array has more items than the limit |
/// | `forbiddenKey` | an object has a key `__proto__`, `constructor` or `prototype` |
/// | `structured` | the params are neither an object nor an array |
/// | `legacyName` | a field was given under two of its names (e.g. `maxResults` and `max_results`) |
/// | `renameConflict` | (results) a declared result rename would overwrite a field the worker also sent |
/// | `json` | (results) the result could not be parsed or serialized |
/// | `$schema` | the method's schema, compiled on first use (built-in or from the worker's manifest), does not compile ([`MethodSpec::validate_params`](crate::MethodSpec::validate_params) and `validate_result` only; the service reports it as a catalog error) |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Violation {
    /// JSON pointer to the offending value (`""` is the params or result
    /// themselves), in public names: legacy names a caller used through an
    /// alias are already translated.
    pub instance_path: String,
    /// JSON pointer to the schema keyword that failed, or `""` for the checks
    /// made before validation.
    pub schema_path: String,
    /// The keyword that failed (see the table above).
    pub keyword: String,
    /// A human-readable explanation; it quotes the offending value only when
    /// that value is short.
    pub message: String,
}

impl Violation {
    /// A violation at `instance_path` of a check made outside the schema.
    pub fn new(
        instance_path: impl Into<String>,
        keyword: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            instance_path: instance_path.into(),
            schema_path: String::new(),
            keyword: keyword.into(),
            message: clip(message.into()),
        }
    }

    pub(crate) fn with_schema_path(mut self, schema_path: impl Into<String>) -> Self {
        self.schema_path = schema_path.into();
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_path.is_empty() {
            "params"
        } else {
            &self.instance_path
        };
        write!(f, "{at}: {} ({})", self.message, self.keyword)
    }
}

fn clip(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Appends `segment` to a JSON pointer, escaping `~` and `/` as RFC 6901 says.
pub(crate) fn push_pointer(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}
