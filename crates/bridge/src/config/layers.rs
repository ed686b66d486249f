//! Layering: defaults, preset, file, environment, flags; each value keeps the
//! name of the layer it came from.
//!
//! The `config` crate was not used: it cannot say which layer a value came
//! from, and every error here must name both the key and its source.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Config, Preset};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The built-in default.
    Default,
    /// A preset.
    Preset(Preset),
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Preset(p) => write!(f, "preset {}", p.as_str()),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One effective setting: its key, value and source.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Setting {
    /// The dotted key (`pool.min_workers`).
    pub key: String,
    /// The value, as TOML.
    pub value: Value,
    /// Where it came from.
    pub source: Source,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}  # {}", self.key, self.value, self.source)
    }
}

/// A configuration that cannot be used: what is wrong, with which key, from
/// which source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", location(.key, .origin))]
#[non_exhaustive]
pub struct ConfigError {
    /// The dotted key, when the problem is one key's.
    pub key: Option<String>,
    /// Where that key's value came from.
    pub origin: Option<Source>,
    /// What is wrong.
    pub problem: String,
}

fn location(key: &Option<String>, origin: &Option<Source>) -> String {
    match (key, origin) {
        (Some(key), Some(source)) => format!("`{key}` (from {source}): "),
        (Some(key), None) => format!("`{key}`: "),
        (None, Some(source)) => format!("{source}: "),
        (None, None) => String::new(),
    }
}

/// Which layers to read. Every layer is optional.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// A TOML file.
    pub file: Option<PathBuf>,
    /// Environment variables to read `PYBRIDGE_*` settings from; `None` reads
    /// none. `LoadOptions::from_process_env` fills it from the process.
    pub env: Option<Vec<(String, String)>>,
    /// Settings from command-line flags: dotted key, value, flag name.
    pub flags: Vec<(String, Value, String)>,
}

impl LoadOptions {
    /// No file, no environment, no flags: the defaults.
    pub fn new() -> LoadOptions {
        LoadOptions::default()
    }

    /// Reads the given file.
    pub fn file(mut self, path: impl Into<PathBuf>) -> LoadOptions {
        self.file = Some(path.into());
        self
    }

    /// Reads `PYBRIDGE_*` variables from the process environment.
    pub fn process_env(mut self) -> LoadOptions {
        self.env = Some(std::env::vars().collect());
        self
    }

    /// Reads `PYBRIDGE_*` variables from the given pairs.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> LoadOptions
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Sets `key` from the command-line flag `flag`.
    pub fn flag(mut self, key: &str, value: impl Into<Value>, flag: &str) -> LoadOptions {
        self.flags
            .push((key.to_string(), value.into(), flag.to_string()));
        self
    }
}

/// The environment variable prefix; `__` separates levels, so
/// `PYBRIDGE_POOL__MIN_WORKERS=4` sets `pool.min_workers`. A variable without
/// `__` is not a setting (other tools, the workers among them, use names such
/// as `PYBRIDGE_DATA_DIR`), except `PYBRIDGE_PRESET`.
const ENV_PREFIX: &str = "PYBRIDGE_";

type Path_ = Vec<String>;

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    source: Source,
    /// The text an environment variable or flag gave, kept to retry it as a
    /// string when a typed reading of it does not fit the key.
    raw: Option<String>,
}

fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            key.push_str(part);
        } else {
            key.push_str(&format!("{part:?}"));
        }
    }
    key
}

fn flatten(table: &Table, prefix: &mut Path_, source: &Source, out: &mut BTreeMap<Path_, Entry>) {
    for (k, v) in table {
        prefix.push(k.clone());
        match v {
            Value::Table(inner) => flatten(inner, prefix, source, out),
            leaf => {
                out.insert(
                    prefix.clone(),
                    Entry {
                        value: leaf.clone(),
                        source: source.clone(),
                        raw: None,
                    },
                );
            }
        }
        prefix.pop();
    }
}

fn unflatten(entries: &BTreeMap<Path_, Entry>) -> Table {
    let mut root = Table::new();
    for (path, entry) in entries {
        let mut table = &mut root;
        for part in &path[..path.len() - 1] {
            let next = table
                .entry(part.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !next.is_table() {
                *next = Value::Table(Table::new());
            }
            table = next
                .as_table_mut()
                .expect("the value was made a table just above");
        }
        table.insert(path[path.len() - 1].clone(), entry.value.clone());
    }
    root
}

/// Reads a flag's or variable's text as TOML when it is a TOML value (a
/// number, a boolean, an array), else as a string.
fn typed(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn file_table(path: &Path) -> Result<Table, ConfigError> {
    let source = Some(Source::File(path.to_path_buf()));
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        key: None,
        origin: source.clone(),
        problem: format!("cannot read it: {e}"),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError {
        key: None,
        origin: source,
        problem: format!("not valid TOML: {}", e.to_string().trim_end()),
    })
}

fn env_entries(vars: &[(String, String)]) -> Result<BTreeMap<Path_, Entry>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") && rest != "PRESET" {
            continue;
        }
        let path: Path_ = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError {
                key: None,
                origin: Some(Source::Env(name.clone())),
                problem: "is not a setting: use PYBRIDGE_<SECTION>__<KEY>".into(),
            });
        }
        out.insert(
            path,
            Entry {
                value: typed(raw),
                source: Source::Env(name.clone()),
                raw: Some(raw.clone()),
            },
        );
    }
    Ok(out)
}

fn preset_of(entries: &BTreeMap<Path_, Entry>) -> Result<Option<Preset>, ConfigError> {
    let Some(entry) = entries.get(&vec!["preset".to_string()]) else {
        return Ok(None);
    };
    entry
        .value
        .clone()
        .try_into()
        .map(Some)
        .map_err(|_| ConfigError {
            key: Some("preset".into()),
            origin: Some(entry.source.clone()),
            problem: "must be development, production or low-latency".into(),
        })
}

pub(super) fn load(options: &LoadOptions) -> Result<(Config, Vec<Setting>), ConfigError> {
    let internal = |problem: String| ConfigError {
        key: None,
        origin: None,
        problem,
    };
    let defaults = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        Ok(_) => return Err(internal("the defaults are not a table".into())),
        Err(e) => return Err(internal(format!("cannot represent the defaults: {e}"))),
    };
    let mut merged = BTreeMap::new();
    flatten(&defaults, &mut Vec::new(), &Source::Default, &mut merged);

    let mut upper = BTreeMap::new();
    if let Some(path) = &options.file {
        flatten(
            &file_table(path)?,
            &mut Vec::new(),
            &Source::File(path.clone()),
            &mut upper,
        );
    }
    if let Some(vars) = &options.env {
        upper.extend(env_entries(vars)?);
    }
    for (key, value, flag) in &options.flags {
        let path: Path_ = key.split('.').map(str::to_string).collect();
        let raw = match value {
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let value = raw.as_deref().map_or_else(|| value.clone(), typed);
        upper.insert(
            path,
            Entry {
                value,
                source: Source::Flag(flag.clone()),
                raw,
            },
        );
    }
    // The preset sits between the defaults and everything else, whichever
    // layer named it.
    if let Some(preset) = preset_of(&upper)? {
        let table: Table = toml::from_str(preset.settings())
            .map_err(|e| internal(format!("preset {} is invalid: {e}", preset.as_str())))?;
        flatten(
            &table,
            &mut Vec::new(),
            &Source::Preset(preset),
            &mut merged,
        );
    }
    merged.extend(upper);

    let config = deserialize(&mut merged)?;
    if let Err((key, problem)) = config.validate() {
        let source = source_of(&merged, &key);
        return Err(ConfigError {
            key: Some(key),
            origin: source,
            problem,
        });
    }
    let settings = merged
        .iter()
        .map(|(path, e)| {
            let key = key_of(path);
            let value = redacted(&key, &e.value);
            Setting {
                key,
                value,
                source: e.source.clone(),
            }
        })
        .collect();
    Ok((config, settings))
}

/// What `pybridge config` may show of a value: secrets never leave the
/// process in a listing that ends up in terminals, tickets and CI logs. The
/// bearer token is hidden whole; a Redis URL keeps everything but its password.
fn redacted(key: &str, value: &Value) -> Value {
    match (key, value) {
        ("gateway.token", Value::String(_)) => Value::String("<redacted>".into()),
        ("cache.redis_url", Value::String(url)) => Value::String(redact_url_password(url)),
        _ => value.clone(),
    }
}

/// `redis://user:pass@host` → `redis://user:<redacted>@host`; a URL without a
/// password is returned as it is.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => user,
        None => return url.to_string(),
    };
    format!("{scheme}://{user}:<redacted>{}", &rest[at..])
}

/// The source of `key`, or of the nearest enclosing key that has one.
fn source_of(merged: &BTreeMap<Path_, Entry>, key: &str) -> Option<Source> {
    let mut path: Path_ = key
        .split('.')
        .map(|p| p.trim_matches('"').to_string())
        .collect();
    while !path.is_empty() {
        if let Some(entry) = merged.get(&path) {
            return Some(entry.source.clone());
        }
        // A key inside a table set as a whole: the first leaf below it says.
        if let Some((_, entry)) = merged
            .range(path.clone()..)
            .next()
            .filter(|(p, _)| p.starts_with(&path))
        {
            return Some(entry.source.clone());
        }
        path.pop();
    }
    None
}

fn deserialize(merged: &mut BTreeMap<Path_, Entry>) -> Result<Config, ConfigError> {
    // A value given as text (env, flag) that read as a number or a boolean may
    // belong to a key that wants a string; each such key is retried as text once.
    loop {
        let table = unflatten(merged);
        match serde_path_to_error::deserialize::<_, Config>(Value::Table(table)) {
            Ok(config) => return Ok(config),
            Err(err) => {
                let path: Path_ = err
                    .path()
                    .iter()
                    .filter_map(|segment| match segment {
                        serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                        serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                        _ => None,
                    })
                    .collect();
                let inner = err.into_inner();
                let retry = merged.get_mut(&path).and_then(|entry| {
                    let raw = entry.raw.take()?;
                    (!entry.value.is_str()).then(|| entry.value = Value::String(raw))
                });
                if retry.is_some() {
                    continue;
                }
                let message = inner.to_string();
                // The path already ends with an unknown field's name.
                let problem = match unknown_field(&message) {
                    Some(_) => "unknown key".to_string(),
                    None => message.trim_end().to_string(),
                };
                let key = key_of(&path);
                let source = source_of(merged, &key);
                return Err(ConfigError {
                    key: Some(key),
                    origin: source,
                    problem,
                });
            }
        }
    }
}

/// The field name in serde's "unknown field `x`, expected one of …" message.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}
