//! What a worker announces in its `$/ready` handshake: the protocol version
//! it speaks, how many calls it runs at once, and its manifest (the params
//! minus `pid`), with the checks that decide whether the pool uses it.

use std::sync::Arc;

use pybridge_protocol::PROTOCOL_VERSION;
use serde_json::Value;
use serde_json::value::RawValue;

/// A worker's announcement, as far as the pool cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ready {
    /// "MAJOR.MINOR"; `None` for handshakes that carry none (`READY`, ping).
    pub(crate) protocol_version: Option<Arc<str>>,
    /// The most calls the worker wants outstanding at once.
    pub(crate) max_concurrency: Option<usize>,
    /// The params minus `pid`; `None` when there is nothing else.
    pub(crate) manifest: Option<Arc<Value>>,
}

impl Ready {
    /// Reads the params of `$/ready`. Everything but `pid` is optional; a
    /// missing `protocol_version` means "1.0".
    pub(crate) fn from_params(params: Option<&RawValue>) -> Result<Ready, String> {
        let mut params = match params.map(|p| serde_json::from_str::<Value>(p.get())) {
            None => serde_json::Map::new(),
            Some(Ok(Value::Object(map))) => map,
            Some(Ok(_)) => return Err("its $/ready params are not an object".into()),
            Some(Err(err)) => return Err(format!("its $/ready params are not JSON: {err}")),
        };
        params.remove("pid");
        let protocol_version = match params.get("protocol_version") {
            None => "1.0".into(),
            Some(Value::String(v)) => Arc::from(v.as_str()),
            Some(other) => {
                return Err(format!(
                    "it announced protocol_version {other}, not a \"MAJOR.MINOR\" string"
                ));
            }
        };
        let max_concurrency = match params.get("max_concurrency") {
            None => None,
            Some(v) => match v.as_u64().filter(|n| *n > 0) {
                Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                None => {
                    return Err(format!(
                        "it announced max_concurrency {v}, not a positive integer"
                    ));
                }
            },
        };
        let manifest = (!params.is_empty()).then(|| Arc::new(Value::Object(params)));
        Ok(Ready {
            protocol_version: Some(protocol_version),
            max_concurrency,
            manifest,
        })
    }

    /// Refuses a protocol version of another major than the pool's.
    pub(crate) fn check_version(&self) -> Result<(), String> {
        let Some(version) = self.protocol_version.as_deref() else {
            return Ok(());
        };
        let major = |v: &str| -> Option<u64> {
            let (major, minor) = v.split_once('.')?;
            minor.parse::<u64>().ok()?;
            major.parse().ok()
        };
        let ours = major(PROTOCOL_VERSION).expect("PROTOCOL_VERSION is MAJOR.MINOR");
        match major(version) {
            Some(theirs) if theirs == ours => Ok(()),
            Some(_) => Err(format!(
                "the worker speaks protocol version {version}; this pool speaks {PROTOCOL_VERSION}"
            )),
            None => Err(format!(
                "the worker announced protocol version {version:?}, not MAJOR.MINOR; this pool speaks {PROTOCOL_VERSION}"
            )),
        }
    }
}

/// Says how a worker's manifest differs from the pool's, if it does.
pub(crate) fn manifest_difference(pool: Option<&Value>, worker: Option<&Value>) -> Option<String> {
    if pool == worker {
        return None;
    }
    let detail = match (pool, worker) {
        (Some(_), None) => "it announced none, the pool's workers did".to_string(),
        (None, Some(_)) => "it announced one, the pool's workers did not".to_string(),
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            let differing: Vec<&str> = keys
                .into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(String::as_str)
                .collect();
            format!("differing: {}", differing.join(", "))
        }
        _ => "its value differs".to_string(),
    };
    Some(format!("its manifest differs from the pool's ({detail})"))
}
