//! Integration tests of pybridge-cache, through its public API only.

mod budget;
mod faults;
mod invalidation;
mod json_values;
mod keys;
mod persistence;
mod policy;
#[cfg(feature = "redis")]
mod redis_proxy;
#[cfg(feature = "redis")]
use pybridge_test_support::redis_server;
#[cfg(feature = "redis")]
mod shared_race;
#[cfg(feature = "redis")]
mod shared_tier;
mod single_flight;
mod support;
mod ttl;
