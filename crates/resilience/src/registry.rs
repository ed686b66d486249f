//! A bounded registry of circuit breakers keyed by name (a method, an
//! endpoint), created on first use from a template configuration.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use metrics::Gauge;
use tokio::sync::broadcast;

use crate::event::{self, Event};
use crate::{BreakerConfig, CircuitBreaker, Error, State};

/// Circuit breakers by key, at most `capacity` of them.
///
/// A cheap handle: clones share the breakers. A lookup of an existing key
/// takes a shared lock and allocates nothing. When a new key arrives at
/// capacity, a closed breaker is evicted, preferring one not used since the
/// last eviction scan (the "second chance" or CLOCK approximation of least
/// recently used). Open, half-open and isolated breakers are never evicted,
/// because forgetting them would let traffic through to a failing dependency;
/// if every breaker is in such a state the new key gets
/// [`Error::RegistryFull`].
#[derive(Debug, Clone)]
pub struct BreakerRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    template: BreakerConfig,
    capacity: NonZeroUsize,
    breakers: RwLock<foldhash::HashMap<Arc<str>, Entry>>,
    events: broadcast::Sender<Event>,
    size: Gauge,
}

#[derive(Debug)]
struct Entry {
    breaker: CircuitBreaker,
    /// Set on every lookup, cleared by eviction scans.
    referenced: AtomicBool,
}

impl BreakerRegistry {
    /// An empty registry whose breakers are built from `template`.
    #[must_use]
    pub fn new(template: BreakerConfig, capacity: NonZeroUsize) -> Self {
        BreakerRegistry {
            inner: Arc::new(Inner {
                template,
                capacity,
                breakers: RwLock::new(HashMap::default()),
                events: event::channel(),
                size: metrics::gauge!(crate::metrics::REGISTRY_BREAKERS),
            }),
        }
    }

    /// The breaker for `key`, created from the template if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::RegistryFull`] if the registry is at capacity and no breaker
    /// in it is closed (so none may be evicted).
    pub fn get(&self, key: &str) -> Result<CircuitBreaker, Error> {
        if let Some(breaker) = self.get_existing(key) {
            return Ok(breaker);
        }
        let inner = &*self.inner;
        let mut breakers = inner
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another caller may have created it between the two locks.
        if let Some(entry) = breakers.get(key) {
            entry.referenced.store(true, Ordering::Relaxed);
            return Ok(entry.breaker.clone());
        }
        if breakers.len() >= inner.capacity.get() {
            let victim = choose_victim(&breakers).ok_or(Error::RegistryFull {
                capacity: inner.capacity.get(),
            })?;
            breakers.remove(&victim);
            inner.size.decrement(1.0);
            tracing::debug!(breaker = &*victim, "evicted circuit breaker");
            event::emit(&inner.events, || Event::BreakerEvicted { key: victim });
        }
        let key: Arc<str> = Arc::from(key);
        let breaker = CircuitBreaker::build(
            Some(Arc::clone(&key)),
            inner.template.clone(),
            Some(inner.events.clone()),
        );
        breakers.insert(
            Arc::clone(&key),
            Entry {
                breaker: breaker.clone(),
                referenced: AtomicBool::new(true),
            },
        );
        inner.size.increment(1.0);
        event::emit(&inner.events, || Event::BreakerCreated { key });
        Ok(breaker)
    }

    /// The breaker for `key`, if it exists.
    #[must_use]
    pub fn get_existing(&self, key: &str) -> Option<CircuitBreaker> {
        let breakers = self
            .inner
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = breakers.get(key)?;
        // Only write when the flag changes, so hot keys do not bounce the
        // cache line between cores.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(entry.breaker.clone())
    }

    /// Removes the breaker for `key`; holders of its handle keep using it.
    pub fn remove(&self, key: &str) -> Option<CircuitBreaker> {
        let mut breakers = self
            .inner
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = breakers.remove(key)?;
        self.inner.size.decrement(1.0);
        Some(entry.breaker)
    }

    /// Every key and the state of its breaker, in no particular order.
    #[must_use]
    pub fn states(&self) -> Vec<(Arc<str>, State)> {
        let breakers = self
            .inner
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        breakers
            .iter()
            .map(|(key, entry)| (Arc::clone(key), entry.breaker.state()))
            .collect()
    }

    /// Resets every breaker (see [`CircuitBreaker::reset`]).
    pub fn reset_all(&self) {
        let breakers: Vec<CircuitBreaker> = {
            let map = self
                .inner
                .breakers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            map.values().map(|entry| entry.breaker.clone()).collect()
        };
        for breaker in breakers {
            breaker.reset();
        }
    }

    /// How many breakers the registry holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .breakers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the registry holds no breaker.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers the registry holds.
    #[must_use]
    pub fn capacity(&self) -> NonZeroUsize {
        self.inner.capacity
    }

    /// The configuration new breakers are built from.
    #[must_use]
    pub fn template(&self) -> &BreakerConfig {
        &self.inner.template
    }

    /// Receives [`Event::BreakerCreated`], [`Event::BreakerEvicted`], and the
    /// [`Event::StateChanged`] of every breaker the registry created. The
    /// channel is bounded; a receiver that falls behind loses the oldest
    /// events.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }
}

/// Picks a closed breaker to evict: the first one not referenced since the
/// last scan, clearing the marks it passes; failing that, any closed one.
fn choose_victim(breakers: &foldhash::HashMap<Arc<str>, Entry>) -> Option<Arc<str>> {
    let mut fallback = None;
    for (key, entry) in breakers {
        if !entry.breaker.is_evictable() {
            continue;
        }
        if !entry.referenced.swap(false, Ordering::Relaxed) {
            return Some(Arc::clone(key));
        }
        fallback.get_or_insert(key);
    }
    fallback.map(Arc::clone)
}
