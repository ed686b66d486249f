//! How many threads the async runtime gets.
//!
//! Spawned workers are processes of their own that want the same cores as
//! the runtime. For the bridge's own work, a few microseconds per call, a
//! thread per core costs more than it gives: the threads park, wake and
//! steal each other's tasks while the workers hold the cores, and each call
//! takes more CPU for no more throughput (BENCHMARKS.md measures both
//! runtimes in the same rounds). So `bench`, `mcp` and the one-shot
//! commands take the cores the local workers leave free, one at least.
//!
//! `serve` is different: each HTTP request costs the gateway far more than
//! the call it makes (parsing, checks, the response, the socket), and more
//! threads answer more requests, so it takes every core, as tokio would.
//! `--runtime-threads` (`PYBRIDGE_RUNTIME_THREADS`) overrides both.

use std::num::NonZeroUsize;

use pybridge::Config;

use crate::options::GlobalArgs;

/// What a command does with its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Serves HTTP: every core.
    Gateway,
    /// Drives the pool the configuration describes (`bench`, `mcp`).
    Pool,
    /// Runs one worker unless `--workers` says otherwise (`call`,
    /// `methods`, `describe`, `conform`).
    OneWorker,
}

/// The runtime's worker threads for `work`: `--runtime-threads` when
/// given, else every core for the gateway, else [`auto`] over this
/// process's cores and the worker processes the command may spawn.
pub(crate) fn threads(global: &GlobalArgs, work: Work) -> usize {
    if let Some(n) = global.runtime_threads {
        return n.get();
    }
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let local = match (work, global.workers) {
        (Work::Gateway, _) => return cores,
        (_, Some(n)) => n,
        (Work::OneWorker, None) => 1,
        // A configuration that does not load is reported by the command
        // itself; the runtime it reports from needs no particular size.
        (Work::Pool, None) => Config::load(&global.load_options(&[], &[]))
            .map_or(cores, |loaded| loaded.config.max_workers()),
    };
    auto(cores, local)
}

/// The cores `local` worker processes leave free, one at least.
pub(crate) fn auto(cores: usize, local: usize) -> usize {
    cores.saturating_sub(local).max(1)
}

#[cfg(test)]
mod tests {
    use super::auto;

    #[test]
    fn the_runtime_takes_the_cores_the_workers_leave_and_one_at_least() {
        // (cores, local workers, threads)
        let table = [
            (1, 1, 1),
            (2, 0, 2),
            (2, 1, 1),
            (2, 2, 1),
            (2, 8, 1),
            (4, 1, 3),
            (8, 2, 6),
            (16, 16, 1),
            (0, 0, 1),
        ];
        for (cores, local, threads) in table {
            assert_eq!(
                auto(cores, local),
                threads,
                "{cores} cores, {local} workers"
            );
        }
    }
}
