//! The method catalog: every method pybridge knows, loaded from catalog files
//! (built in, and the user's own), with schemas compiled once: at load, or
//! on first use for the built-in ones.

mod reader;

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::coerce::has_defaults;
use crate::error::{CatalogProblem, Error, Result};
use crate::manifest::{Manifest, ManifestMethod};
use crate::rename::RenameTree;
use crate::schema::{CompiledSchema, SchemaOrigin};
use crate::spec::{CachePolicy, FieldSource, FieldSources, MethodSpec};

use reader::{MethodDef, Reader, SchemaRef};

pub(crate) use reader::check_method_name;

/// The method catalog. Cheap to clone (an `Arc` inside), and shared by every
/// call.
///
/// The catalog is data: one JSON file per method family, built in with the
/// crate, plus user files in the same format loaded at run time (see
/// [`CatalogBuilder::file`]). A catalog file looks like this:
///
/// ```json
/// {
///   "family": "weather",
///   "description": "optional",
///   "methods": [
///     {
///       "name": "weather.forecast",
///       "aliases": ["getForecast"],
///       "wire_name": "weather_service.forecast",
///       "description": "optional",
///       "params_schema": "weather/forecast.params.json",
///       "result_schema": {"type": "object"},
///       "idempotent": true,
///       "cache": {"enabled": true, "l1_ttl_ms": 60000, "l2_ttl_ms": 3600000},
///       "timeout_ms": 5000,
///       "envelope": false,
///       "param_renames": {"/days": "num_days"},
///       "legacy_params": {"/days": ["numberOfDays"]},
///       "result_renames": {"/temperature": "temp_c"},
///       "fixiplug_shape": "recommendations"
///     }
///   ]
/// }
/// ```
///
/// `name` (namespaced snake_case, prefixed by the family), `wire_name` and
/// `idempotent` are required. Schemas are a path relative to the catalog
/// file, or inline. Renames are keyed by JSON pointers of public names (`*`
/// for every array item): `param_renames` and `result_renames` give the wire
/// name, `legacy_params` the names callers of an alias may use. Unknown keys
/// are errors.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    methods: Vec<Arc<MethodSpec>>,
    index: foldhash::HashMap<Box<str>, (usize, Resolution)>,
    version: String,
    manifest: Option<Manifest>,
}

/// How a name was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// The method's public name.
    Name,
    /// One of the method's aliases; the method's legacy param names are accepted.
    Alias,
    /// Not in the catalog; passed through under the name used.
    PassThrough,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("methods", &self.inner.methods.len())
            .field("version", &self.inner.version)
            .finish()
    }
}

/// Catalog files and schemas compiled into a crate (the framework crate's
/// catalog, for one): catalog files as (source name, text), and the schema
/// files their `params_schema`/`result_schema` paths name, as (path, text).
#[derive(Debug, Clone, Copy)]
pub struct BuiltinCatalog {
    /// Catalog files: (source name such as `builtin:weather.json`, text).
    pub files: &'static [(&'static str, &'static str)],
    /// Schema files, by the path the catalog files use: (path, text).
    pub schemas: &'static [(&'static str, &'static str)],
    /// Families whose methods no worker of this catalog implements: they are
    /// listed, marked unavailable, and fail as unknown methods.
    pub unavailable_families: &'static [&'static str],
}

impl BuiltinCatalog {
    fn schema(&self, path: &str) -> Option<&'static str> {
        self.schemas
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, text)| *text)
    }
}

impl Catalog {
    /// An empty builder: add compiled-in catalogs with
    /// [`CatalogBuilder::builtin`] and files with [`CatalogBuilder::file`].
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// The method with this public name or alias.
    pub fn get(&self, name: &str) -> Option<&Arc<MethodSpec>> {
        self.resolve(name).map(|(spec, _)| spec)
    }

    /// The method with this public name or alias, and which of the two it was.
    pub fn resolve(&self, name: &str) -> Option<(&Arc<MethodSpec>, Resolution)> {
        self.inner
            .index
            .get(name)
            .map(|&(index, how)| (&self.inner.methods[index], how))
    }

    /// Every method, in file order.
    pub fn methods(&self) -> impl ExactSizeIterator<Item = &Arc<MethodSpec>> {
        self.inner.methods.iter()
    }

    /// Number of methods.
    pub fn len(&self) -> usize {
        self.inner.methods.len()
    }

    /// Whether the catalog has no method.
    pub fn is_empty(&self) -> bool {
        self.inner.methods.is_empty()
    }

    /// The worker's manifest merged into the registry, if any.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.inner.manifest.as_ref()
    }

    /// Names in the registry close to `name` (public names and aliases, by
    /// edit distance), closest first, at most three: for "did you mean".
    pub fn suggest(&self, name: &str) -> Vec<String> {
        suggest(name, self.inner.index.keys().map(|k| &**k))
    }

    /// Compiles every method's schemas that are not compiled yet (those of
    /// built-in catalogs are compiled on first use otherwise).
    ///
    /// # Errors
    /// The first schema that does not compile, as [`Error::Catalog`] naming
    /// its file and key.
    pub fn compile_schemas(&self) -> Result<()> {
        self.inner
            .methods
            .iter()
            .try_for_each(|spec| spec.compile_schemas())
    }

    /// A fingerprint of everything the catalog was built from (files and
    /// overrides); it changes when any of them changes, so cache keys that
    /// include it never serve a result computed under another catalog.
    pub fn version(&self) -> &str {
        &self.inner.version
    }
}

/// Per-deployment changes to a catalog method, from the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodOverride {
    /// Method name to send to the worker instead of the catalog's.
    pub wire_name: Option<String>,
    /// Deadline instead of the catalog's.
    pub timeout: Option<Duration>,
    /// Cache policy instead of the catalog's.
    pub cache: Option<CachePolicy>,
    /// Idempotence instead of the catalog's.
    pub idempotent: Option<bool>,
    /// Whether results arrive in an envelope, instead of the catalog's.
    pub envelope: Option<bool>,
}

impl MethodOverride {
    /// An override that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the method under `wire_name`.
    pub fn wire_name(mut self, wire_name: impl Into<String>) -> Self {
        self.wire_name = Some(wire_name.into());
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the cache policy.
    pub fn cache(mut self, cache: CachePolicy) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Declares the method idempotent or not.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Declares whether results arrive in a `{data, metadata}` envelope.
    pub fn envelope(mut self, envelope: bool) -> Self {
        self.envelope = Some(envelope);
        self
    }
}

/// Builds a [`Catalog`]: the built-in files (unless left out), user files,
/// and per-method overrides.
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    builtin: Vec<BuiltinCatalog>,
    sources: Vec<Source>,
    manifest: Option<Manifest>,
    overrides: Vec<(String, MethodOverride)>,
}

/// A method read from any layer, before compilation.
struct Entry {
    file: String,
    dir: Option<PathBuf>,
    /// Where in the worker's manifest the method is (`manifest:<worker>`,
    /// `methods[i]`), when the manifest declares it: schemas it supplies are
    /// located there in errors.
    manifest_at: Option<(String, String)>,
    builtin: Option<BuiltinCatalog>,
    def: MethodDef,
    positional: Option<Vec<String>>,
    sources: FieldSources,
    available: bool,
}

#[derive(Debug)]
enum Source {
    File(PathBuf),
    Text { name: String, text: String },
}

impl CatalogBuilder {
    /// Adds a compiled-in catalog; its files come before every user file.
    pub fn builtin(mut self, catalog: BuiltinCatalog) -> Self {
        self.builtin.push(catalog);
        self
    }

    /// Adds a user catalog file, read when [`build`](Self::build) runs.
    /// Schema paths in it are relative to its directory.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(Source::File(path.into()));
        self
    }

    /// Adds a catalog from text; `name` is used in error messages. Its
    /// schemas must be inline (there is no directory to resolve paths in).
    pub fn source(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.sources.push(Source::Text {
            name: name.into(),
            text: text.into(),
        });
        self
    }

    /// Merges a worker's manifest: above the catalogs, below the overrides.
    ///
    /// A manifest method is matched to the catalog methods with its name as
    /// their wire name (what the worker serves), or else to the catalog
    /// method with its name as public name or alias, whose wire name becomes
    /// the worker's. For a matched method the manifest sets the cache TTL and
    /// the timeout and fills a description or schema the catalog lacks, but
    /// the result is never looser than the catalog: a curated schema always
    /// wins (it describes public names, which renames may map to other wire
    /// names), and the manifest may withdraw idempotence, never grant it. A manifest method no catalog
    /// has becomes a method of its own (source `manifest:<worker>`). Catalog
    /// methods the manifest does not declare are marked unavailable, since
    /// the worker said what it serves (unless it declared no methods at all).
    pub fn manifest(mut self, manifest: Manifest) -> Self {
        self.manifest = Some(manifest);
        self
    }

    /// Overrides settings of the method with this public name.
    pub fn override_method(mut self, name: impl Into<String>, changes: MethodOverride) -> Self {
        self.overrides.push((name.into(), changes));
        self
    }

    /// Reads, checks and compiles everything.
    ///
    /// Reading user files is blocking file I/O: call this at start-up, not on
    /// an async runtime's worker thread.
    ///
    /// # Errors
    /// [`Error::Catalog`] naming the file and key at fault (syntax, unknown
    /// or missing keys, wrong types, invalid names, duplicate names or
    /// aliases, schemas that do not compile, renames of fields the schema
    /// does not have); [`Error::CatalogIo`] when a file cannot be read;
    /// [`Error::Config`] for an override of an unknown method or with an
    /// invalid value.
    pub fn build(self) -> Result<Catalog> {
        let mut fingerprint = Fingerprint::new();
        let mut defs: Vec<Entry> = Vec::new();
        for builtin in &self.builtin {
            for (name, text) in builtin.files {
                fingerprint.add(name);
                fingerprint.add(text);
                for def in (Reader { file: name }).parse(text)?.methods {
                    let available = !builtin.unavailable_families.contains(&def.family.as_str());
                    defs.push(Entry {
                        file: (*name).to_owned(),
                        dir: None,
                        manifest_at: None,
                        builtin: Some(*builtin),
                        def,
                        positional: None,
                        sources: FieldSources::all(FieldSource::Builtin),
                        available,
                    });
                }
            }
        }
        for source in self.sources {
            let (name, dir, text) = match source {
                Source::File(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| Error::CatalogIo {
                            path: path.clone(),
                            source,
                        })?;
                    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    (path.display().to_string(), Some(dir), text)
                }
                Source::Text { name, text } => (name, None, text),
            };
            fingerprint.add(&name);
            fingerprint.add(&text);
            for def in (Reader { file: &name }).parse(&text)?.methods {
                defs.push(Entry {
                    file: name.clone(),
                    dir: dir.clone(),
                    manifest_at: None,
                    builtin: None,
                    def,
                    positional: None,
                    sources: FieldSources::all(FieldSource::CatalogFile),
                    available: true,
                });
            }
        }
        if let Some(manifest) = &self.manifest {
            fingerprint.add(manifest.identity());
            merge_manifest(&mut defs, manifest)?;
        }

        // Names and aliases share one namespace across all files.
        let mut owners: HashMap<String, String> = HashMap::new();
        for Entry { file, def, .. } in &defs {
            let names = std::iter::once((def.name.as_str(), format!("{}.name", def.key))).chain(
                def.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, alias)| (alias.as_str(), format!("{}.aliases[{i}]", def.key))),
            );
            for (name, key) in names {
                match owners.entry(name.to_owned()) {
                    MapEntry::Occupied(first) => {
                        return Err(Error::Catalog {
                            file: file.clone(),
                            key,
                            problem: CatalogProblem::DuplicateName {
                                name: name.to_owned(),
                                first_file: first.get().clone(),
                            },
                        });
                    }
                    MapEntry::Vacant(slot) => {
                        slot.insert(file.clone());
                    }
                }
            }
        }

        let mut overrides: HashMap<String, MethodOverride> = HashMap::new();
        for (name, changes) in self.overrides {
            fingerprint.add(&format!("{name}={changes:?}"));
            if !defs.iter().any(|entry| entry.def.name == name) {
                let known = defs.iter().map(|entry| entry.def.name.as_str());
                let close = suggest(&name, known);
                return Err(Error::Config {
                    key: format!("methods.{name}"),
                    reason: format!(
                        "no method with this public name in the registry (catalogs and the worker's manifest){}",
                        crate::error::DidYouMean(&close)
                    ),
                });
            }
            overrides.insert(name, changes);
        }

        let mut methods = Vec::with_capacity(defs.len());
        let mut index = HashMap::default();
        for entry in defs {
            let changes = overrides.remove(&entry.def.name).unwrap_or_default();
            let spec = compile(entry, changes)?;
            let position = methods.len();
            index.insert(spec.name.clone(), (position, Resolution::Name));
            for alias in &spec.aliases {
                index.insert(alias.clone(), (position, Resolution::Alias));
            }
            methods.push(Arc::new(spec));
        }
        Ok(Catalog {
            inner: Arc::new(Inner {
                methods,
                index,
                version: fingerprint.finish(),
                manifest: self.manifest,
            }),
        })
    }
}

fn compile(entry: Entry, changes: MethodOverride) -> Result<MethodSpec> {
    let Entry {
        file,
        dir,
        manifest_at,
        builtin,
        def,
        positional,
        mut sources,
        available,
    } = entry;
    let (file, dir) = (file.as_str(), dir.as_deref());
    let reader = Reader { file };
    let key = def.key.clone();
    let at = |field: &str| format!("{key}.{field}");

    // Schemas compiled into the program (built-in catalogs) and those of the
    // worker's manifest are compiled on first use: a process that makes one
    // call compiles one method's schemas, instead of the whole catalog's
    // twice (before and after the manifest) and every manifest schema after
    // the worker is ready, on the way to the first call. Built-in schemas
    // cannot be broken at run time: their tests compile every one
    // (`Catalog::compile_schemas`). A manifest schema that does not compile
    // (the SDK generates them from type hints) fails its method's calls with
    // a catalog error naming the manifest and key, not the whole start.
    // Schemas of catalog files are compiled here, so a bad one is an error
    // at load that names its file and key, before any call.
    let load = |schema: Option<SchemaRef>,
                field: &str,
                source: FieldSource|
     -> Result<Option<CompiledSchema>> {
        let value = match schema {
            None => return Ok(None),
            Some(SchemaRef::Inline(value)) => value,
            Some(SchemaRef::Path(path)) => load_schema(&reader, &at(field), dir, builtin, &path)?,
        };
        let origin = match (&manifest_at, source) {
            (Some((file, key)), FieldSource::Manifest) => SchemaOrigin {
                file: file.as_str().into(),
                key: format!("{key}.{field}").into(),
            },
            _ => SchemaOrigin {
                file: file.into(),
                key: at(field).into(),
            },
        };
        let deferred = match source {
            FieldSource::Builtin => builtin.is_some(),
            FieldSource::Manifest => true,
            FieldSource::Default | FieldSource::CatalogFile | FieldSource::Config => false,
        };
        let schema = if deferred {
            CompiledSchema::deferred(value, origin)
        } else {
            CompiledSchema::compile(value, origin)
        };
        schema
            .map(Some)
            .map_err(|reason| reader.error(at(field), CatalogProblem::InvalidSchema { reason }))
    };
    let params_schema = load(def.params_schema, "params_schema", sources.params_schema)?;
    let result_schema = load(def.result_schema, "result_schema", sources.result_schema)?;

    let tree = |entries: Vec<(String, Vec<String>)>,
                field: &str,
                schema: Option<&CompiledSchema>|
     -> Result<RenameTree> {
        let mut tree = RenameTree::default();
        for (pointer, others) in entries {
            let entry_key = format!("{}.{pointer}", at(field));
            let others = others.into_iter().map(String::into_boxed_str).collect();
            tree.insert(&pointer, others).map_err(|reason| {
                reader.error(&entry_key, CatalogProblem::InvalidValue { reason })
            })?;
        }
        if let Some(schema) = schema {
            for path in tree.paths() {
                if !schema_has_path(schema.source(), schema.source(), &path, 0) {
                    return Err(reader.error(
                        at(field),
                        CatalogProblem::InvalidValue {
                            reason: format!(
                                "the schema has no field at `/{}`",
                                path.iter()
                                    .map(|s| s.unwrap_or("*"))
                                    .collect::<Vec<_>>()
                                    .join("/")
                            ),
                        },
                    ));
                }
            }
        }
        Ok(tree)
    };
    let single =
        |pairs: Vec<(String, String)>| pairs.into_iter().map(|(p, o)| (p, vec![o])).collect();
    let param_renames = tree(
        single(def.param_renames),
        "param_renames",
        params_schema.as_ref(),
    )?;
    let legacy_params = tree(def.legacy_params, "legacy_params", params_schema.as_ref())?;
    let result_renames = tree(
        single(def.result_renames),
        "result_renames",
        result_schema.as_ref(),
    )?;

    if let (Some(names), Some(schema)) = (&positional, &params_schema) {
        let properties = schema.source().get("properties");
        if let Some(missing) = names
            .iter()
            .find(|n| properties.and_then(|p| p.get(n.as_str())).is_none())
        {
            return Err(reader.error(
                at("positional"),
                CatalogProblem::InvalidValue {
                    reason: format!("`{missing}` is not a property of the params schema"),
                },
            ));
        }
    }
    if changes.wire_name.is_some() {
        sources.wire_name = FieldSource::Config;
    }
    if changes.timeout.is_some() {
        sources.timeout = FieldSource::Config;
    }
    if changes.cache.is_some() {
        sources.cache = FieldSource::Config;
    }
    if changes.idempotent.is_some() {
        sources.idempotent = FieldSource::Config;
    }
    let wire_name = match changes.wire_name {
        Some(wire_name) => {
            check_method_name(&wire_name).map_err(|reason| Error::Config {
                key: format!("methods.{}.wire_name", def.name),
                reason,
            })?;
            wire_name
        }
        None => def.wire_name,
    };
    if changes.timeout == Some(Duration::ZERO) {
        return Err(Error::Config {
            key: format!("methods.{}.timeout", def.name),
            reason: "a timeout must be longer than zero".into(),
        });
    }
    let cache = changes.cache.unwrap_or(def.cache);
    if cache.l1_ttl == Some(Duration::ZERO) || cache.l2_ttl == Some(Duration::ZERO) {
        return Err(Error::Config {
            key: format!("methods.{}.cache", def.name),
            reason: "a time to live must be longer than zero".into(),
        });
    }

    Ok(MethodSpec {
        metrics: Arc::new(crate::telemetry::MethodMetrics::new(def.name.clone())),
        name: def.name.into(),
        family: def.family.into(),
        aliases: def
            .aliases
            .into_iter()
            .map(String::into_boxed_str)
            .collect(),
        wire_name: wire_name.into(),
        description: def.description.map(String::into_boxed_str),
        timeout: changes.timeout.or(def.timeout),
        idempotent: changes.idempotent.unwrap_or(def.idempotent),
        cache,
        envelope: changes.envelope.unwrap_or(def.envelope),
        params_have_defaults: params_schema
            .as_ref()
            .is_some_and(|schema| has_defaults(schema.source())),
        params_schema,
        result_schema,
        param_renames,
        legacy_params,
        result_renames,
        fixiplug_shape: def.fixiplug_shape.map(String::into_boxed_str),
        source: file.into(),
        in_catalog: true,
        positional: positional.map(|names| names.into_iter().map(String::into_boxed_str).collect()),
        sources,
        available,
    })
}

fn load_schema(
    reader: &Reader<'_>,
    key: &str,
    dir: Option<&Path>,
    builtin: Option<BuiltinCatalog>,
    path: &str,
) -> Result<Value> {
    let text = if let Some(builtin) = builtin {
        builtin
            .schema(path)
            .ok_or_else(|| {
                reader.error(
                    key,
                    CatalogProblem::InvalidValue {
                        reason: format!("no built-in schema `{path}`"),
                    },
                )
            })?
            .to_owned()
    } else {
        let Some(dir) = dir else {
            return Err(reader.error(
                key,
                CatalogProblem::InvalidValue {
                    reason: "a catalog given as text must inline its schemas".into(),
                },
            ));
        };
        let full = dir.join(path);
        std::fs::read_to_string(&full).map_err(|source| Error::CatalogIo { path: full, source })?
    };
    serde_json::from_str(&text).map_err(|e| {
        reader.error(
            key,
            CatalogProblem::InvalidSchema {
                reason: format!("`{path}` is not valid JSON: {e}"),
            },
        )
    })
}

/// Merges the manifest's methods into the catalog's (see
/// [`CatalogBuilder::manifest`]).
fn merge_manifest(defs: &mut Vec<Entry>, manifest: &Manifest) -> Result<()> {
    let worker = manifest.name.as_deref().unwrap_or("worker");
    let file = format!("manifest:{worker}");
    let mut matched = vec![false; defs.len()];
    for (i, method) in manifest.methods.iter().enumerate() {
        check_method_name(&method.name).map_err(|reason| Error::Manifest {
            key: format!("methods[{i}].name"),
            reason,
        })?;
        // Several catalog methods may share a wire name (a user file can
        // give a served method another public name): each is refined.
        let mut found: Vec<usize> = (0..matched.len())
            .filter(|&j| defs[j].def.wire_name == method.name)
            .collect();
        if found.is_empty() {
            // A public name or an alias: the worker serves it under that name.
            found.extend((0..matched.len()).filter(|&j| {
                defs[j].def.name == method.name || defs[j].def.aliases.contains(&method.name)
            }));
        }
        if found.is_empty() {
            defs.push(from_manifest(&file, i, method));
        }
        for index in found {
            matched[index] = true;
            refine(&mut defs[index], method);
            defs[index].manifest_at = Some((file.clone(), format!("methods[{i}]")));
        }
    }
    if !manifest.methods.is_empty() {
        for (entry, matched) in defs.iter_mut().zip(matched) {
            if !matched && entry.sources.method != FieldSource::Manifest {
                entry.available = false;
            }
        }
    }
    Ok(())
}

/// A catalog method the worker also declares: the manifest's policy wins,
/// its schemas and description only fill what the catalog lacks.
fn refine(entry: &mut Entry, method: &ManifestMethod) {
    let (def, sources) = (&mut entry.def, &mut entry.sources);
    if def.wire_name != method.name {
        def.wire_name = method.name.clone();
        sources.wire_name = FieldSource::Manifest;
    }
    if def.description.is_none() && method.description.is_some() {
        def.description = method.description.clone();
        sources.description = FieldSource::Manifest;
    }
    if def.params_schema.is_none()
        && let Some(schema) = &method.params_schema
    {
        def.params_schema = Some(SchemaRef::Inline(schema.clone()));
        sources.params_schema = FieldSource::Manifest;
        // Positional names refer to the manifest's schema; they only apply
        // when that schema is the one in force and no renames intervene.
        if def.param_renames.is_empty() {
            entry.positional = method.positional.clone();
        }
    }
    if def.result_schema.is_none()
        && let Some(schema) = &method.result_schema
    {
        def.result_schema = Some(SchemaRef::Inline(schema.clone()));
        sources.result_schema = FieldSource::Manifest;
    }
    // Idempotence lets a written call run twice: the worker may withdraw
    // it, but never grant it over a catalog that says no.
    if method.idempotent == Some(false) && def.idempotent {
        def.idempotent = false;
        sources.idempotent = FieldSource::Manifest;
    }
    if let Some(ttl) = method.cache_ttl {
        def.cache = CachePolicy::enabled(Some(ttl), Some(ttl));
        sources.cache = FieldSource::Manifest;
    }
    if let Some(timeout) = method.timeout {
        def.timeout = Some(timeout);
        sources.timeout = FieldSource::Manifest;
    }
}

/// A method only the worker declares.
fn from_manifest(file: &str, index: usize, method: &ManifestMethod) -> Entry {
    let family = method
        .name
        .split_once('.')
        .map_or("", |(family, _)| family)
        .to_owned();
    let mut sources = FieldSources::all(FieldSource::Manifest);
    if method.idempotent.is_none() {
        sources.idempotent = FieldSource::Default;
    }
    if method.cache_ttl.is_none() {
        sources.cache = FieldSource::Default;
    }
    if method.timeout.is_none() {
        sources.timeout = FieldSource::Default;
    }
    if method.description.is_none() {
        sources.description = FieldSource::Default;
    }
    if method.params_schema.is_none() {
        sources.params_schema = FieldSource::Default;
    }
    if method.result_schema.is_none() {
        sources.result_schema = FieldSource::Default;
    }
    Entry {
        file: file.to_owned(),
        dir: None,
        manifest_at: Some((file.to_owned(), format!("methods[{index}]"))),
        builtin: None,
        def: MethodDef {
            key: format!("methods[{index}]"),
            family,
            name: method.name.clone(),
            aliases: Vec::new(),
            wire_name: method.name.clone(),
            description: method.description.clone(),
            params_schema: method.params_schema.clone().map(SchemaRef::Inline),
            result_schema: method.result_schema.clone().map(SchemaRef::Inline),
            idempotent: method.idempotent.unwrap_or(false),
            cache: method.cache_ttl.map_or(CachePolicy::disabled(), |ttl| {
                CachePolicy::enabled(Some(ttl), Some(ttl))
            }),
            timeout: method.timeout,
            envelope: false,
            param_renames: Vec::new(),
            legacy_params: Vec::new(),
            result_renames: Vec::new(),
            fixiplug_shape: None,
        },
        positional: method.positional.clone(),
        sources,
        available: true,
    }
}

/// The names among `known` within a small edit distance of `name`, closest
/// first, at most three.
pub(crate) fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).clamp(2, 6);
    let mut close: Vec<(usize, &str)> = known
        .filter(|k| *k != name)
        .filter_map(|k| {
            let distance = edit_distance(name, k);
            // Also compare the part after the family, so that
            // `get_recomendations` finds `pattern_learning.get_recommendations`.
            let tail = k
                .rsplit_once('.')
                .map_or(usize::MAX, |(_, t)| edit_distance(name, t));
            let best = distance.min(tail);
            (best <= limit).then_some((best, k))
        })
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    close
        .into_iter()
        .take(3)
        .map(|(_, k)| k.to_owned())
        .collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

/// Whether `schema` describes a field at `path` (public names, `None` for
/// array items), looking through local `$ref`s and the branches of
/// `allOf`/`anyOf`/`oneOf`/`if`/`then`/`else`.
fn schema_has_path(root: &Value, schema: &Value, path: &[Option<&str>], depth: u8) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    if depth > 32 {
        return false;
    }
    let schema = match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => match root.pointer(pointer) {
            Some(target) => target,
            None => return false,
        },
        None => schema,
    };
    let here = match first {
        Some(key) => schema
            .get("properties")
            .and_then(|p| p.get(*key))
            .is_some_and(|sub| schema_has_path(root, sub, rest, depth + 1)),
        None => schema
            .get("items")
            .is_some_and(|sub| schema_has_path(root, sub, rest, depth + 1)),
    };
    here || ["allOf", "anyOf", "oneOf"].iter().any(|k| {
        schema
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|branches| {
                branches
                    .iter()
                    .any(|b| schema_has_path(root, b, path, depth + 1))
            })
    }) || ["if", "then", "else"].iter().any(|k| {
        schema
            .get(*k)
            .is_some_and(|branch| schema_has_path(root, branch, path, depth + 1))
    })
}

/// FNV-1a, 64 bits: stable across runs and platforms, which `std`'s hasher
/// is not promised to be.
struct Fingerprint(u64);

impl Fingerprint {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, text: &str) {
        for byte in text.bytes().chain(std::iter::once(0xff)) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(self) -> String {
        format!("{:016x}", self.0)
    }
}
