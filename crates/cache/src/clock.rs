//! Wall-clock time for disk expiry that follows Tokio's clock when it is paused.
//!
//! Disk entries outlive the process, so their expiry is a wall-clock time in
//! Unix milliseconds. Reading `SystemTime` alone would make disk TTLs
//! untestable with `tokio::time::pause()`, so the offset between Tokio's clock
//! and the real monotonic clock is added: zero (to within a microsecond) in
//! production, and exactly the advanced time in a paused test. Every instance
//! in a process therefore agrees on the time, paused or not.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> u64 {
    let system = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let tokio_now = tokio::time::Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let offset = if tokio_now >= real_now {
        i128::try_from((tokio_now - real_now).as_millis()).unwrap_or(i128::MAX)
    } else {
        -i128::try_from((real_now - tokio_now).as_millis()).unwrap_or(i128::MAX)
    };
    let ms = i128::try_from(system)
        .unwrap_or(i128::MAX)
        .saturating_add(offset);
    u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
}
