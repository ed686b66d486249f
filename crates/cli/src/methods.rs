//! `pybridge methods [--json] [--openrpc] [-- WORKER...]`: every method of
//! the registry, with where it came from, its policy and its schemas.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use pybridge::{Catalog, MethodSpec};
use serde_json::Value;

use crate::options::{self, GlobalArgs};

/// `pybridge methods`.
#[derive(Debug, Args)]
pub(crate) struct MethodsArgs {
    /// Print a JSON array, one object per method.
    #[arg(long, conflicts_with = "openrpc")]
    json: bool,
    /// Print an OpenRPC 1.3.2 document.
    #[arg(long)]
    openrpc: bool,
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: MethodsArgs) -> Result<ExitCode> {
    let catalog = registry(global, &args.worker).await?;
    let text = if args.openrpc {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&pybridge::openrpc::document(&catalog))?
        )
    } else if args.json {
        let all: Vec<Value> = catalog.methods().map(|spec| describe(spec)).collect();
        format!("{}\n", serde_json::to_string_pretty(&all)?)
    } else {
        table(&catalog)
    };
    crate::out::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Starts one worker (its manifest is part of the registry), takes the
/// registry, and stops the worker.
pub(crate) async fn registry(global: &GlobalArgs, worker: &[String]) -> Result<Catalog> {
    let mut extra = Vec::new();
    if global.workers.is_none() {
        extra.push(("pool.min_workers", toml::Value::Integer(1), "methods"));
        extra.push(("pool.max_workers", toml::Value::Integer(1), "methods"));
    }
    let config = options::load(global, &extra, worker)?;
    // Listing the registry calls no method: there is no trace to export.
    crate::logging::init(&config.log, &crate::telemetry::Telemetry::disabled());
    let bridge = options::start(config).await?;
    let catalog = bridge.catalog().clone();
    bridge.shutdown().await;
    Ok(catalog)
}

/// One method as `methods --json` prints it.
pub(crate) fn describe(spec: &MethodSpec) -> Value {
    let mut value = pybridge::openrpc::policy(spec);
    if let Some(map) = value.as_object_mut() {
        map.insert("name".into(), spec.name().into());
        map.insert("description".into(), spec.description().into());
        map.insert("params_schema".into(), spec.params_schema().cloned().into());
        map.insert("result_schema".into(), spec.result_schema().cloned().into());
    }
    value
}

fn table(catalog: &Catalog) -> String {
    let width = catalog.methods().map(|m| m.name().len()).max().unwrap_or(0);
    let source_width = catalog
        .methods()
        .map(|m| m.source().len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for spec in catalog.methods() {
        let mut facts = Vec::new();
        if !spec.available() {
            facts.push("UNAVAILABLE".to_owned());
        }
        if spec.idempotent() {
            facts.push("idempotent".to_owned());
        }
        let cache = spec.cache();
        if cache.enabled {
            facts.push(match cache.l1_ttl {
                Some(ttl) => format!("cache {}", humantime::format_duration(ttl)),
                None => "cache".to_owned(),
            });
        }
        if let Some(timeout) = spec.timeout() {
            facts.push(format!("timeout {}", humantime::format_duration(timeout)));
        }
        facts.push(
            if spec.params_schema().is_some() {
                "params schema"
            } else {
                "no params schema"
            }
            .to_owned(),
        );
        text.push_str(&format!(
            "{:width$}  {:source_width$}  [{}]  {}\n",
            spec.name(),
            spec.source(),
            facts.join(", "),
            spec.description().unwrap_or("-"),
        ));
    }
    text
}
