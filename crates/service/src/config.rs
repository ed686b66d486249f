//! How the service checks and adapts calls: strictness, limits, coercion,
//! defaults and the result shape.

use std::num::NonZeroUsize;

use crate::error::{Error, Result};
use crate::{Coercion, Defaults, Limits, ProtoKeys};

/// What happens to a method that is not in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// It is sent to the worker under the name used, with its params checked
    /// against the limits only (the default, as in the original).
    #[default]
    PassThrough,
    /// It is rejected with [`Error::UnknownMethod`](crate::Error::UnknownMethod).
    Strict,
}

/// The shape of adapted results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResultShape {
    /// The result as the worker sent it, unwrapped from its envelope and
    /// with the declared result renames applied (the default).
    #[default]
    Public,
    /// The service's [`Reshape`](crate::Reshape) is applied to every result
    /// (the framework crate's FixiPlug shapes, for callers migrating from the
    /// original adapter); without one, the same as `Public`.
    Reshaped,
}

/// Whether results are checked against the methods' result schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResultValidation {
    /// Not checked (the default): results pass through without being parsed
    /// when nothing else needs it.
    #[default]
    Off,
    /// Checked; a mismatch is logged at `warn` and counted, and the result
    /// is returned anyway.
    Warn,
    /// Checked; a mismatch fails the call with
    /// [`Error::InvalidResult`](crate::Error::InvalidResult).
    Enforce,
}

/// Whether params are checked against the methods' schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ParamsValidation {
    /// Checked; every violation is reported (the default).
    #[default]
    Schema,
    /// Not checked: only the limits and the declared renames apply. For
    /// callers that validate upstream and want the cheapest path.
    Off,
}

/// The service's configuration. Build it with [`ServiceConfig::builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// Unknown methods: passed through or rejected.
    pub mode: Mode,
    /// Limits checked before validation.
    pub limits: Limits,
    /// Scalar coercion of string params.
    pub coercion: Coercion,
    /// Schema defaults for absent params.
    pub defaults: Defaults,
    /// Shape of adapted results.
    pub result_shape: ResultShape,
    /// Checking of results against result schemas.
    pub result_validation: ResultValidation,
    /// Checking of params against params schemas.
    pub params_validation: ParamsValidation,
}

impl ServiceConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ServiceConfigBuilder {
        ServiceConfigBuilder {
            config: ServiceConfig::default(),
        }
    }
}

/// Builds a [`ServiceConfig`]. Every setting has a documented default.
#[derive(Debug, Clone)]
pub struct ServiceConfigBuilder {
    config: ServiceConfig,
}

impl ServiceConfigBuilder {
    /// Unknown methods (default [`Mode::PassThrough`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Longest params text in bytes (default 4 MiB).
    pub fn max_params_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.config.limits.max_params_bytes = bytes;
        self
    }

    /// Deepest nesting of objects and arrays (default 64, at most
    /// [`Limits::MAX_DEPTH_CEILING`]).
    pub fn max_depth(mut self, depth: NonZeroUsize) -> Self {
        self.config.limits.max_depth = depth;
        self
    }

    /// Longest string or key in UTF-8 bytes (default 1 MiB).
    pub fn max_string_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.config.limits.max_string_bytes = bytes;
        self
    }

    /// Most items in one array (default 100 000).
    pub fn max_array_len(mut self, items: NonZeroUsize) -> Self {
        self.config.limits.max_array_len = items;
        self
    }

    /// `__proto__`, `constructor` and `prototype` keys (default [`ProtoKeys::Reject`]).
    pub fn proto_keys(mut self, proto_keys: ProtoKeys) -> Self {
        self.config.limits.proto_keys = proto_keys;
        self
    }

    /// Scalar coercion (default [`Coercion::Off`]).
    pub fn coercion(mut self, coercion: Coercion) -> Self {
        self.config.coercion = coercion;
        self
    }

    /// Schema defaults (default [`Defaults::Off`]).
    pub fn defaults(mut self, defaults: Defaults) -> Self {
        self.config.defaults = defaults;
        self
    }

    /// Result shape (default [`ResultShape::Public`]).
    pub fn result_shape(mut self, shape: ResultShape) -> Self {
        self.config.result_shape = shape;
        self
    }

    /// Result validation (default [`ResultValidation::Off`]).
    pub fn result_validation(mut self, validation: ResultValidation) -> Self {
        self.config.result_validation = validation;
        self
    }

    /// Whether params are checked against their schemas (default [`ParamsValidation::Schema`]).
    pub fn params_validation(mut self, validation: ParamsValidation) -> Self {
        self.config.params_validation = validation;
        self
    }

    /// Checks the settings together.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key when `max_depth` is above
    /// [`Limits::MAX_DEPTH_CEILING`], or a string may be longer than the
    /// params themselves.
    pub fn build(self) -> Result<ServiceConfig> {
        let limits = self.config.limits;
        if limits.max_depth.get() > Limits::MAX_DEPTH_CEILING {
            return Err(Error::Config {
                key: "max_depth".into(),
                reason: format!(
                    "{} is above the ceiling of {}",
                    limits.max_depth,
                    Limits::MAX_DEPTH_CEILING
                ),
            });
        }
        if limits.max_string_bytes > limits.max_params_bytes {
            return Err(Error::Config {
                key: "max_string_bytes".into(),
                reason: format!(
                    "{} is larger than max_params_bytes ({}), so it could never apply",
                    limits.max_string_bytes, limits.max_params_bytes
                ),
            });
        }
        Ok(self.config)
    }
}
