//! The supervisor: keeps the pool at its target size, restarts the dead,
//! guards against crash loops, pings idle workers, recycles old ones, grows
//! and shrinks, and runs the shutdown sequence.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::events::{PoolEvent, RecycleReason};
use crate::shared::{Shared, ShutdownReport, SupervisorMsg};
use crate::stats::WorkerState;
use crate::worker::Worker;
use crate::{FailureReason, WorkerId, process};

/// How often the supervisor looks at timers: backoff, cool-down, pings,
/// recycling by age and memory, hung calls, scaling.
const TICK: Duration = Duration::from_millis(100);
/// Memory is read every this many ticks.
const RSS_EVERY: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    /// Still serving; stopped once its replacement is ready.
    Retiring,
    /// Asked to stop; its calls drain.
    Stopping,
}

#[derive(Debug)]
struct Member {
    slot: usize,
    phase: Phase,
    /// The remote endpoint it is connected to; `None` for a local process.
    endpoint: Option<usize>,
}

/// A remote endpoint's dialling schedule. Each endpoint has its own backoff
/// and no crash-loop guard: one unreachable host must not stop the pool from
/// starting local workers, nor from dialling the other hosts.
#[derive(Debug)]
struct Remote {
    /// The worker on its connection (dialling, or serving).
    worker: Option<WorkerId>,
    /// Failed dials and lost connections since it was last ready.
    failures: u32,
    next_dial: Instant,
}

struct Initial {
    waiting: usize,
    ready: usize,
    first_error: Option<Arc<str>>,
    done: oneshot::Sender<Result<(), Arc<str>>>,
}

struct Supervisor {
    shared: Arc<Shared>,
    members: HashMap<WorkerId, Member>,
    slot_restarts: Vec<u64>,
    backoff: Duration,
    next_start: Instant,
    failures: VecDeque<Instant>,
    cooldown: Duration,
    cooldown_until: Option<Instant>,
    initial: Option<Initial>,
    last_ping: HashMap<WorkerId, Instant>,
    pinging: HashSet<WorkerId>,
    pings: JoinSet<(WorkerId, Result<Option<u64>, String>)>,
    ticks: u32,
    /// Slots 0..=max_workers belong to local processes (one spare for a
    /// recycled worker's replacement); endpoint i uses the slot after them.
    local_slots: usize,
    remotes: Vec<Remote>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut inbox: mpsc::Receiver<SupervisorMsg>,
    started: oneshot::Sender<Result<(), Arc<str>>>,
) {
    let config = &shared.config;
    let mut sup = Supervisor {
        members: HashMap::new(),
        // One spare slot: a recycled worker's replacement starts before it stops.
        slot_restarts: vec![0; config.max_workers + 1 + config.endpoints.len()],
        local_slots: config.max_workers + 1,
        remotes: config
            .endpoints
            .iter()
            .map(|_| Remote {
                worker: None,
                failures: 0,
                next_dial: Instant::now(),
            })
            .collect(),
        backoff: config.restart.initial_backoff,
        next_start: Instant::now(),
        failures: VecDeque::new(),
        cooldown: config.restart.cooldown,
        cooldown_until: None,
        initial: None,
        last_ping: HashMap::new(),
        pinging: HashSet::new(),
        pings: JoinSet::new(),
        ticks: 0,
        shared: Arc::clone(&shared),
    };
    let remotes = config.endpoints.len();
    if config.min_workers == 0 && remotes == 0 {
        let _ = started.send(Ok(()));
    } else {
        sup.initial = Some(Initial {
            waiting: config.min_workers + remotes,
            ready: 0,
            first_error: None,
            done: started,
        });
        for _ in 0..config.min_workers {
            sup.start_one();
        }
        for index in 0..remotes {
            sup.dial(index);
        }
    }
    let stop = shared.supervise.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                Some(message) => sup.handle(message),
                None => break,
            },
            Some(joined) = sup.pings.join_next(), if !sup.pings.is_empty() => {
                if let Ok((worker, outcome)) = joined {
                    sup.ping_done(worker, outcome);
                }
            }
            _ = tick.tick() => sup.tick().await,
            () = stop.cancelled() => break,
        }
        sup.reconcile();
    }
}

impl Supervisor {
    fn worker(&self, id: WorkerId) -> Option<Arc<Worker>> {
        self.shared.admission.worker(id)
    }

    fn live_workers(&self) -> Vec<Arc<Worker>> {
        self.shared.admission.workers()
    }

    fn start_one(&mut self) {
        let used: HashSet<usize> = self.members.values().map(|m| m.slot).collect();
        let Some(slot) = (0..self.local_slots).find(|s| !used.contains(s)) else {
            return;
        };
        let id = WorkerId(self.shared.next_worker.fetch_add(1, Ordering::Relaxed));
        self.members.insert(
            id,
            Member {
                slot,
                phase: Phase::Starting,
                endpoint: None,
            },
        );
        let restarts = self.slot_restarts[slot];
        self.shared.tracker.spawn(process::run_worker(
            Arc::clone(&self.shared),
            id,
            slot,
            restarts,
        ));
    }

    /// Dials the remote endpoint at `index`: one connection, one worker.
    fn dial(&mut self, index: usize) {
        let id = WorkerId(self.shared.next_worker.fetch_add(1, Ordering::Relaxed));
        let slot = self.local_slots + index;
        self.members.insert(
            id,
            Member {
                slot,
                phase: Phase::Starting,
                endpoint: Some(index),
            },
        );
        self.remotes[index].worker = Some(id);
        let restarts = self.slot_restarts[slot];
        self.shared.tracker.spawn(crate::remote::run_remote(
            Arc::clone(&self.shared),
            id,
            index,
            slot,
            restarts,
        ));
    }

    /// Schedules the next dial of endpoint `index` after a failure: the
    /// restart policy's exponential backoff, with equal jitter so that many
    /// gateways that lost the same host do not dial it in step.
    fn redial_later(&mut self, index: usize) {
        let restart = &self.shared.config.restart;
        let remote = &mut self.remotes[index];
        remote.worker = None;
        let exponent = remote.failures.min(16);
        remote.failures = remote.failures.saturating_add(1);
        let delay = restart
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(restart.max_backoff);
        let half = delay / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        remote.next_dial = Instant::now() + half + jitter;
    }

    /// Local workers starting or serving (remote ones are not counted
    /// against the target: each endpoint is one connection of its own).
    fn active(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.endpoint.is_none() && matches!(m.phase, Phase::Starting | Phase::Ready))
            .count()
    }

    fn set_ready_gauge(&self) {
        let ready = self
            .members
            .values()
            .filter(|m| m.phase == Phase::Ready)
            .count();
        metrics::gauge!(crate::metrics::WORKERS_READY).set(ready as f64);
    }

    fn handle(&mut self, message: SupervisorMsg) {
        match message {
            SupervisorMsg::Ready { worker } => self.ready(worker),
            SupervisorMsg::StartFailed { worker, reason } => self.start_failed(worker, reason),
            SupervisorMsg::Exited { worker, crashed } => self.exited(worker, crashed),
            SupervisorMsg::Recycle { worker, reason } => self.recycle(worker, reason),
        }
        self.set_ready_gauge();
    }

    fn ready(&mut self, worker: WorkerId) {
        let mut endpoint = None;
        if let Some(member) = self.members.get_mut(&worker) {
            member.phase = Phase::Ready;
            endpoint = member.endpoint;
        }
        if let Some(index) = endpoint {
            self.remotes[index].failures = 0;
            self.shared.admission.set_unavailable(None);
            if let Some(initial) = &mut self.initial {
                initial.waiting -= 1;
                initial.ready += 1;
            }
            self.finish_initial();
            return;
        }
        self.backoff = self.shared.config.restart.initial_backoff;
        self.next_start = Instant::now();
        if self.shared.crash_loop.swap(false, Ordering::AcqRel) {
            info!("a worker started again; crash-loop guard reset");
            self.failures.clear();
            self.cooldown = self.shared.config.restart.cooldown;
            self.cooldown_until = None;
            self.shared.emit(PoolEvent::Recovered);
        }
        self.shared.admission.set_unavailable(None);
        if let Some(initial) = &mut self.initial {
            initial.waiting -= 1;
            initial.ready += 1;
        }
        self.finish_initial();
        // A ready worker completes a recycle: its predecessor may now drain.
        let retiring: Vec<WorkerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.phase == Phase::Retiring)
            .map(|(id, _)| *id)
            .collect();
        for id in retiring {
            if let Some(member) = self.members.get_mut(&id) {
                member.phase = Phase::Stopping;
            }
            if let Some(w) = self.worker(id) {
                w.stop_with(FailureReason::Recycled);
            }
        }
    }

    fn finish_initial(&mut self) {
        let done = self.initial.as_ref().is_some_and(|i| i.waiting == 0);
        if !done {
            return;
        }
        if let Some(initial) = self.initial.take() {
            let outcome = if initial.ready > 0 {
                Ok(())
            } else {
                Err(initial
                    .first_error
                    .unwrap_or_else(|| "no worker started".into()))
            };
            let _ = initial.done.send(outcome);
        }
    }

    fn start_failed(&mut self, worker: WorkerId, reason: Arc<str>) {
        let member = self.members.remove(&worker);
        if let Some(index) = member.and_then(|m| m.endpoint) {
            self.redial_later(index);
            if let Some(initial) = &mut self.initial {
                initial.waiting -= 1;
                initial
                    .first_error
                    .get_or_insert_with(|| Arc::clone(&reason));
                self.finish_initial();
            }
            return;
        }
        let now = Instant::now();
        let restart = &self.shared.config.restart;
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > restart.window)
        {
            self.failures.pop_front();
        }
        self.next_start = now + self.backoff;
        self.backoff = (self.backoff * 2).min(restart.max_backoff);
        if let Some(initial) = &mut self.initial {
            initial.waiting -= 1;
            initial
                .first_error
                .get_or_insert_with(|| Arc::clone(&reason));
            self.finish_initial();
            return;
        }
        if self.failures.len() >= restart.crash_loop_starts as usize {
            let cooldown = self.cooldown;
            self.cooldown_until = Some(now + cooldown);
            self.cooldown = (self.cooldown * 2).min(restart.max_cooldown);
            self.shared.crash_loop.store(true, Ordering::Release);
            warn!(?cooldown, reason = %reason, "workers keep failing to start; cooling down");
            self.shared.emit(PoolEvent::CrashLoop {
                cooldown,
                reason: Arc::clone(&reason),
            });
            if !self.members.values().any(|m| m.phase == Phase::Ready) {
                // Nobody can serve for a while: fail queued calls now rather
                // than at their deadlines, and new calls at once.
                self.shared.admission.set_unavailable(Some(reason));
            }
        }
    }

    fn exited(&mut self, worker: WorkerId, crashed: bool) {
        self.last_ping.remove(&worker);
        let Some(member) = self.members.remove(&worker) else {
            return;
        };
        if let Some(index) = member.endpoint {
            if crashed {
                self.slot_restarts[member.slot] += 1;
                self.shared.restarts.fetch_add(1, Ordering::Relaxed);
            }
            self.redial_later(index);
            return;
        }
        if crashed && matches!(member.phase, Phase::Ready | Phase::Retiring) {
            // It served, so this is no crash loop: replace it at once.
            self.slot_restarts[member.slot] += 1;
            self.shared.restarts.fetch_add(1, Ordering::Relaxed);
            if !self.shared.admission.is_closing() {
                self.shared
                    .emit(PoolEvent::WorkerRestarting { replacing: worker });
            }
        }
    }

    fn recycle(&mut self, worker: WorkerId, reason: RecycleReason) {
        // One worker at a time, and never the last one standing before its
        // replacement exists (the replacement is started first anyway).
        if self
            .members
            .values()
            .any(|m| matches!(m.phase, Phase::Retiring))
        {
            return;
        }
        let Some(member) = self.members.get_mut(&worker) else {
            return;
        };
        // A remote worker's process is not ours to replace.
        if member.phase != Phase::Ready || member.endpoint.is_some() {
            return;
        }
        member.phase = Phase::Retiring;
        let label = match reason {
            RecycleReason::Requests => "requests",
            RecycleReason::Age => "age",
            RecycleReason::Memory => "memory",
        };
        metrics::counter!(crate::metrics::WORKERS_RECYCLED, crate::metrics::LABEL_REASON => label)
            .increment(1);
        info!(worker = %worker, reason = label, "recycling worker");
        self.shared
            .emit(PoolEvent::WorkerRecycling { worker, reason });
    }

    /// Starts workers until the active count meets the target, within the
    /// backoff and the crash-loop cool-down.
    fn reconcile(&mut self) {
        if self.shared.admission.is_closing() {
            return;
        }
        let now = Instant::now();
        for index in 0..self.remotes.len() {
            let remote = &self.remotes[index];
            if remote.worker.is_none() && now >= remote.next_dial {
                self.dial(index);
            }
        }
        let target = self.shared.target.load(Ordering::Relaxed);
        let active = self.active();
        if active >= target {
            return;
        }
        let now = Instant::now();
        if now < self.next_start {
            return;
        }
        if let Some(until) = self.cooldown_until {
            if now < until {
                return;
            }
            // After a cool-down, probe with one worker before starting the rest.
            if !self.members.values().any(|m| m.phase == Phase::Starting) {
                self.start_one();
            }
            return;
        }
        for _ in active..target {
            self.start_one();
        }
    }

    async fn tick(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
        let now = Instant::now();
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let workers = self.live_workers();
        let read_rss = self.ticks.is_multiple_of(RSS_EVERY);
        for w in &workers {
            let state = w.state();
            if matches!(state, WorkerState::Ready | WorkerState::Draining) && w.lot.overdue(now) {
                warn!(worker = %w.id, pid = w.pid, "worker kept a cancelled call past the grace period; killing it");
                w.kill_with(FailureReason::Hung);
                continue;
            }
            if state != WorkerState::Ready {
                continue;
            }
            if config
                .recycle
                .max_age
                .is_some_and(|age| w.spawned_at.elapsed() >= age)
            {
                self.recycle(w.id, RecycleReason::Age);
            }
            // The call path asks for recycling the moment the quota is reached;
            // this catches a request that came while another worker recycled.
            if w.recycle_after
                .is_some_and(|n| w.served.load(Ordering::Relaxed) >= n)
            {
                self.recycle(w.id, RecycleReason::Requests);
            }
            if read_rss
                && w.endpoint.is_none()
                && let Some(rss) = read_rss_bytes(w.pid).await
            {
                w.rss_bytes.store(rss, Ordering::Relaxed);
                if config.recycle.max_rss_bytes.is_some_and(|max| rss > max) {
                    self.recycle(w.id, RecycleReason::Memory);
                }
            }
            if let Some(interval) = config.health.ping_interval {
                let due = self
                    .last_ping
                    .get(&w.id)
                    .is_none_or(|t| now.duration_since(*t) >= interval);
                if due && w.in_flight() == 0 && !self.pinging.contains(&w.id) {
                    self.last_ping.insert(w.id, now);
                    self.pinging.insert(w.id);
                    let (shared, worker) = (Arc::clone(&self.shared), Arc::clone(w));
                    let within = config.health.ping_timeout;
                    self.pings.spawn(async move {
                        let outcome = process::ping(&shared, &worker, within).await;
                        (worker.id, outcome)
                    });
                }
            }
        }
        self.scale();
    }

    fn ping_done(&mut self, worker: WorkerId, outcome: Result<Option<u64>, String>) {
        self.pinging.remove(&worker);
        let Some(w) = self.worker(worker) else {
            return;
        };
        match outcome {
            Ok(rss) => {
                w.missed_pings.store(0, Ordering::Relaxed);
                if let Some(rss) = rss {
                    w.rss_bytes.store(rss, Ordering::Relaxed);
                }
            }
            Err(reason) => {
                let missed = w.missed_pings.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(worker = %worker, missed, reason = %reason, "worker missed a ping");
                if missed >= self.shared.config.health.max_missed_pings
                    && w.state() == WorkerState::Ready
                {
                    w.kill_with(FailureReason::Unresponsive);
                }
            }
        }
    }

    fn scale(&mut self) {
        let config = &self.shared.config;
        let target = self.shared.target.load(Ordering::Relaxed);
        let queued = self.shared.admission.queued();
        let waited = self.shared.admission.oldest_wait();
        let none_active = self.active() == 0;
        let starved =
            queued > 0 && (none_active || waited.is_some_and(|w| w >= config.scale.grow_after));
        if starved && target < config.max_workers && self.cooldown_until.is_none() {
            self.resize(target + 1);
            return;
        }
        if target <= config.min_workers || queued > 0 {
            return;
        }
        let idle = self.members.iter().find_map(|(id, m)| {
            if m.phase != Phase::Ready || m.endpoint.is_some() {
                return None;
            }
            let w = self.worker(*id)?;
            w.lot
                .idle_for()
                .is_some_and(|d| d >= config.scale.idle_timeout)
                .then_some(w)
        });
        if let Some(w) = idle {
            if let Some(member) = self.members.get_mut(&w.id) {
                member.phase = Phase::Stopping;
            }
            info!(worker = %w.id, "stopping an idle worker");
            w.stop_with(FailureReason::Recycled);
            self.resize(target - 1);
        }
    }

    fn resize(&self, workers: usize) {
        self.shared.target.store(workers, Ordering::Relaxed);
        info!(workers, "pool resized");
        self.shared.emit(PoolEvent::Resized { workers });
    }
}

/// Reads a process's resident set size from /proc.
async fn read_rss_bytes(pid: u32) -> Option<u64> {
    let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The shutdown sequence; see [`crate::Pool::shutdown`].
pub(crate) async fn shutdown(shared: &Arc<Shared>) -> ShutdownReport {
    if shared.admission.close() {
        let mut done = shared.shutdown_done().subscribe();
        return match done.wait_for(Option::is_some).await {
            Ok(report) => report.unwrap_or(ShutdownReport {
                drained: false,
                abandoned_calls: 0,
            }),
            Err(_) => ShutdownReport {
                drained: false,
                abandoned_calls: 0,
            },
        };
    }
    info!("pool shutting down");
    shared.emit(PoolEvent::ShuttingDown);
    let in_flight = || shared.admission.in_flight();
    let until = Instant::now() + shared.config.shutdown.drain_timeout;
    let drained = loop {
        if in_flight() == 0 {
            break true;
        }
        if Instant::now() >= until {
            break false;
        }
        shared.admission.released(Duration::from_millis(20)).await;
    };
    let abandoned_calls = in_flight();
    shared.supervise.cancel();
    // One token for all: a replacement still being spawned right now sees it
    // too, where a snapshot of the worker list would miss it.
    shared.stop_all.cancel();
    shared.tracker.close();
    shared.tracker.wait().await;
    shared.token.cancel();
    let report = ShutdownReport {
        drained,
        abandoned_calls,
    };
    shared.shutdown_done().send_replace(Some(report));
    info!(drained, abandoned_calls, "pool shut down");
    report
}
