//! Named presets: groups of settings for common deployments, applied on top of
//! the defaults and under everything else.

use serde::{Deserialize, Serialize};

/// A named group of settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Preset {
    /// Few workers, verbose logs, quick failure.
    Development,
    /// More workers, patient timeouts, more retries, JSON logs, recycling.
    Production,
    /// Short deadlines, at most one retry, no breaker, eager growth.
    LowLatency,
}

impl Preset {
    /// The preset's name as written in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Development => "development",
            Preset::Production => "production",
            Preset::LowLatency => "low-latency",
        }
    }

    /// The settings the preset applies, as TOML.
    pub(crate) fn settings(self) -> &'static str {
        match self {
            Preset::Development => {
                r#"
                [pool]
                min_workers = 2
                ping_interval = "5s"
                [call]
                timeout = "30s"
                [retry]
                max_retries = 2
                [breaker]
                mode = "consecutive"
                failure_threshold = 5
                break_duration = "10s"
                [log]
                level = "debug"
                format = "pretty"
                "#
            }
            Preset::Production => {
                r#"
                [pool]
                min_workers = 8
                max_workers = 16
                recycle_after_requests = 100000
                max_rss = "1GiB"
                [call]
                timeout = "60s"
                [retry]
                max_retries = 4
                max_delay = "10s"
                [breaker]
                failure_rate = 0.5
                window = "30s"
                min_calls = 50
                break_duration = "60s"
                half_open_successes = 3
                [log]
                level = "warn"
                format = "json"
                "#
            }
            Preset::LowLatency => {
                r#"
                [pool]
                min_workers = 8
                max_workers = 16
                grow_after = "100ms"
                ping_interval = "2s"
                cancel_grace = "1s"
                [call]
                timeout = "5s"
                [retry]
                max_retries = 1
                initial_delay = "5ms"
                max_delay = "100ms"
                [breaker]
                enabled = false
                [log]
                level = "warn"
                "#
            }
        }
    }
}
