//! State shared by cache handles, the memory tier's listener and the disk task:
//! counters, the event channel, and the disk tier's health.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{broadcast, watch};

use crate::event::{CacheEvent, DiskFault, L2Status};
use crate::stats::{Counters, Stat};

pub(crate) const NOT_CONFIGURED: u8 = 0;
pub(crate) const STARTING: u8 = 1;
pub(crate) const ACTIVE: u8 = 2;
pub(crate) const DISABLED: u8 = 3;
pub(crate) const CLOSED: u8 = 4;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    events: broadcast::Sender<CacheEvent>,
    /// The disk tier's state, read on every disk access; `state_watch` mirrors
    /// it so that readers can wait for the start-up check to finish.
    state: AtomicU8,
    state_watch: watch::Sender<u8>,
    fault: Mutex<Option<DiskFault>>,
    /// Whether values are JSON, checked as they come back from disk or the
    /// shared tier (see `CacheBuilder::json_values`).
    pub(crate) json_values: bool,
}

impl Shared {
    pub(crate) fn new(event_capacity: usize, l2_configured: bool) -> Self {
        let initial = if l2_configured {
            STARTING
        } else {
            NOT_CONFIGURED
        };
        Shared {
            counters: Counters::new(),
            events: broadcast::channel(event_capacity).0,
            state: AtomicU8::new(initial),
            state_watch: watch::channel(initial).0,
            fault: Mutex::new(None),
            json_values: false,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, event: CacheEvent) {
        // An error only means nobody is listening.
        let _ = self.events.send(event);
    }

    #[inline]
    pub(crate) fn l2_state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    pub(crate) fn l2_status(&self) -> L2Status {
        match self.l2_state() {
            NOT_CONFIGURED => L2Status::NotConfigured,
            STARTING => L2Status::Starting,
            ACTIVE => L2Status::Active,
            DISABLED => {
                let fault = self
                    .fault
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match fault {
                    Some(fault) => L2Status::Disabled(fault),
                    // The fault is stored before the state changes, so this
                    // is only reachable in a race with `set_active`.
                    None => L2Status::Active,
                }
            }
            _ => L2Status::Closed,
        }
    }

    fn transition(&self, from: &[u8], to: u8) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if !from.contains(&current) {
                return false;
            }
            match self
                .state
                .compare_exchange(current, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.state_watch.send_replace(to);
                    self.counters
                        .disk_active_gauge
                        .set(if to == ACTIVE { 1.0 } else { 0.0 });
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Marks the disk tier active (after the start-up check, or when it works
    /// again). Returns whether it was off before.
    pub(crate) fn set_l2_active(&self) -> bool {
        self.transition(&[STARTING, DISABLED], ACTIVE)
    }

    /// Turns the disk tier off after `fault`. Only the first failure warns and
    /// publishes an event; later ones (already off) are only counted.
    pub(crate) fn disable_l2(&self, fault: DiskFault) -> bool {
        self.counters.incr(Stat::L2Errors);
        let mut slot = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(self.l2_state(), STARTING | ACTIVE) {
            tracing::debug!(%fault, "disk cache tier already off");
            return false;
        }
        *slot = Some(fault.clone());
        let changed = self.transition(&[STARTING, ACTIVE], DISABLED);
        drop(slot);
        if changed {
            tracing::warn!(
                %fault,
                "disk cache tier disabled; serving from memory only"
            );
            self.emit(CacheEvent::DiskTierDisabled { fault });
        }
        changed
    }

    pub(crate) fn close_l2(&self) {
        self.transition(&[STARTING, ACTIVE, DISABLED], CLOSED);
    }

    /// Waits until the start-up check of the disk tier has finished.
    pub(crate) async fn l2_started(&self) {
        let mut rx = self.state_watch.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|s| *s != STARTING).await;
    }
}
