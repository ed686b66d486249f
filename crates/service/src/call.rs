//! The seam between a typed API and the call path: calls a method with raw
//! params and returns its raw result.

use std::future::Future;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::Error;

/// Calls a registry method with raw params and returns its raw result.
///
/// The implementer runs the whole call path: [`Service::prepare`](crate::Service::prepare)
/// (lookup, limits, validation, renames), the cache, retries and the pool,
/// then [`Service::adapt_result`](crate::Service::adapt_result). The typed
/// API only encodes requests and decodes results.
///
/// Implement it with `async fn`; the returned future must be `Send`, so the
/// typed API works on a multi-threaded runtime:
///
/// ```
/// use pybridge_service::{Call, Error};
/// use serde_json::value::RawValue;
///
/// struct Echo;
///
/// impl Call for Echo {
///     type Error = Error;
///     async fn call(&self, _method: &str, params: Box<RawValue>) -> Result<Box<RawValue>, Error> {
///         Ok(params)
///     }
/// }
/// ```
pub trait Call: Send + Sync {
    /// The call's error; service errors (encoding params, decoding results)
    /// convert into it.
    type Error: From<Error> + Send;

    /// Calls the method with this public name.
    fn call(
        &self,
        method: &str,
        params: Box<RawValue>,
    ) -> impl Future<Output = Result<Box<RawValue>, Self::Error>> + Send;
}

impl<C: Call + ?Sized> Call for &C {
    type Error = C::Error;

    fn call(
        &self,
        method: &str,
        params: Box<RawValue>,
    ) -> impl Future<Output = Result<Box<RawValue>, Self::Error>> + Send {
        (**self).call(method, params)
    }
}

impl<C: Call + ?Sized> Call for Arc<C> {
    type Error = C::Error;

    fn call(
        &self,
        method: &str,
        params: Box<RawValue>,
    ) -> impl Future<Output = Result<Box<RawValue>, Self::Error>> + Send {
        (**self).call(method, params)
    }
}
