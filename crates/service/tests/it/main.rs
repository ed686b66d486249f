//! Integration tests of pybridge-service, through its public API only: the
//! registry merged from catalogs, a worker's manifest and overrides.

mod lazy_schemas;
mod registry;
