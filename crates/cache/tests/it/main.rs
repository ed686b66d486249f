//! Integration tests of pybridge-cache, through its public API only.

mod budget;
mod faults;
mod invalidation;
mod keys;
mod persistence;
mod policy;
mod single_flight;
mod support;
mod ttl;
