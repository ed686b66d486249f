//! The values a call takes and returns: [`CallOptions`], [`CallRequest`] (a
//! call as one value, for `tower`), [`Reply`] and [`ResultSource`],
//! [`BatchCall`], and what [`Invalidate`] drops from the cache.

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::{Error, Result};

/// Options for one call. The defaults come from the catalog and the configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// The time the call may take, instead of the method's timeout.
    pub timeout: Option<Duration>,
    /// An absolute deadline; wins over `timeout`.
    pub deadline: Option<Instant>,
    /// Skip the cache: neither read nor write it.
    pub no_cache: bool,
    /// Make one attempt only.
    pub no_retry: bool,
}

impl CallOptions {
    /// The defaults.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Sets the time the call may take.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an absolute deadline.
    pub fn deadline(mut self, deadline: Instant) -> CallOptions {
        self.deadline = Some(deadline);
        self
    }

    /// Skips the cache.
    pub fn no_cache(mut self) -> CallOptions {
        self.no_cache = true;
        self
    }

    /// Makes one attempt only.
    pub fn no_retry(mut self) -> CallOptions {
        self.no_retry = true;
        self
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultSource {
    /// A worker answered.
    Worker,
    /// The memory tier of the cache.
    CacheMemory,
    /// The disk tier of the cache.
    CacheDisk,
    /// The shared tier of the cache (Redis): another process computed it.
    CacheShared,
}

/// What [`Bridge::invalidate`](crate::Bridge::invalidate) drops from the cache.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Invalidate<'a> {
    /// The cached result of one call: a method (public name or alias) and
    /// its params, keyed exactly as the call would be.
    Call {
        /// The method, as a caller names it.
        method: &'a str,
        /// Its params, as a caller passes them.
        params: Option<&'a RawValue>,
    },
    /// Every cached result of a method (public name or alias).
    Method(&'a str),
    /// Every cached result.
    All,
}

/// A call's result, with what the worker said about it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Reply {
    /// The result, unwrapped from its envelope and adapted.
    pub result: Box<RawValue>,
    /// The envelope's metadata, when the worker sent one.
    pub metadata: Option<Box<RawValue>>,
    /// Where the result came from.
    pub source: ResultSource,
    /// The call's correlation id: the id of its first request on the wire,
    /// also in its span and logs.
    pub correlation_id: i64,
}

/// One call of a [`Bridge::batch`](crate::Bridge::batch).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchCall {
    /// The method.
    pub method: String,
    /// Its params.
    pub params: Option<Box<RawValue>>,
}

impl BatchCall {
    /// A call of `method` with raw params.
    pub fn new(method: impl Into<String>, params: Option<Box<RawValue>>) -> BatchCall {
        BatchCall {
            method: method.into(),
            params,
        }
    }
}

/// One call as a value: what [`Bridge`](crate::Bridge) takes as a
/// [`tower::Service`], so that tower middleware (rate limits, load shedding,
/// concurrency limits) can wrap it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallRequest {
    /// The method, as a caller names it.
    pub method: String,
    /// Its params.
    pub params: Option<Box<RawValue>>,
    /// Per-call options.
    pub options: CallOptions,
}

impl CallRequest {
    /// A call of `method` with raw params and the default options.
    pub fn new(method: impl Into<String>, params: Option<Box<RawValue>>) -> CallRequest {
        CallRequest {
            method: method.into(),
            params,
            options: CallOptions::default(),
        }
    }

    /// A call of `method` with params given as a JSON value.
    ///
    /// # Errors
    /// [`Error::EncodeParams`](crate::Error::EncodeParams) when the params
    /// cannot be serialized.
    pub fn json(
        method: impl Into<String>,
        params: &serde_json::Value,
    ) -> crate::Result<CallRequest> {
        let method = method.into();
        let params = to_params(&method, params)?;
        Ok(CallRequest::new(method, params))
    }

    /// Sets the call's options.
    pub fn options(mut self, options: CallOptions) -> CallRequest {
        self.options = options;
        self
    }
}

/// Params as raw JSON; `null` is no params.
pub(crate) fn to_params<P: Serialize + ?Sized>(
    method: &str,
    params: &P,
) -> Result<Option<Box<RawValue>>> {
    let raw = serde_json::value::to_raw_value(params).map_err(|source| Error::EncodeParams {
        method: method.to_string(),
        source,
    })?;
    Ok((raw.get() != "null").then_some(raw))
}
