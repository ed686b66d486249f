//! How many threads the async runtime gets.
//!
//! The workers are processes of their own, and on the same host they want
//! the same cores as the runtime. A runtime with a thread per core then
//! pays for it on every call: its threads park, wake and steal each other's
//! tasks while the workers hold the cores, and the bridge spends more CPU
//! per call for no more throughput (BENCHMARKS.md measures the bridge on
//! both runtimes in the same rounds). So, unless `--runtime-threads` says
//! otherwise, the runtime takes the cores the local workers leave free, and
//! at least a quarter of them, so that a gateway on a large host keeps
//! threads for its connections.

use std::num::NonZeroUsize;

use pybridge::Config;

use crate::options::GlobalArgs;

/// The runtime's worker threads: `--runtime-threads` when given, else
/// [`auto`] over this process's cores and the worker processes the
/// command may spawn. `one_worker` is a command that runs one worker
/// unless `--workers` says otherwise (`call`, `methods`, `describe`,
/// `conform`).
pub(crate) fn threads(global: &GlobalArgs, one_worker: bool) -> usize {
    if let Some(n) = global.runtime_threads {
        return n.get();
    }
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let local = match global.workers {
        Some(n) => n,
        None if one_worker => 1,
        // A configuration that does not load is reported by the command
        // itself; the runtime it reports from needs no particular size.
        None => Config::load(&global.load_options(&[], &[]))
            .map_or(cores, |loaded| loaded.config.max_workers()),
    };
    auto(cores, local)
}

/// The cores `local` worker processes leave free, and at least a quarter
/// of them (rounded up), which is at least one.
pub(crate) fn auto(cores: usize, local: usize) -> usize {
    cores.saturating_sub(local).max(cores.div_ceil(4)).max(1)
}

#[cfg(test)]
mod tests {
    use super::auto;

    #[test]
    fn the_runtime_takes_the_cores_the_workers_leave_and_a_quarter_at_least() {
        // (cores, local workers, threads)
        let table = [
            (1, 1, 1),
            (2, 0, 2),
            (2, 1, 1),
            (2, 2, 1),
            (2, 8, 1),
            (4, 1, 3),
            (4, 4, 1),
            (8, 2, 6),
            (8, 8, 2),
            (16, 4, 12),
            (16, 16, 4),
            (16, 64, 4),
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
