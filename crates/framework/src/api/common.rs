//! Types shared by several families.

use serde::{Deserialize, Serialize};

/// The problem domains the pattern library is organised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Finance.
    Finance,
    /// Analytics.
    Analytics,
    /// Machine learning (`"ml"`).
    Ml,
    /// Geospatial.
    Geospatial,
    /// Text processing.
    Text,
    /// Anything else.
    General,
}

/// The implementation language of a generated extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Python (the schema's default).
    Python,
    /// Mojo.
    Mojo,
    /// Rust.
    Rust,
    /// C.
    C,
}
