//! The bulkhead: a concurrency limit with a bounded wait queue.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::{CallError, Error};

/// At most `max_concurrent` calls at once, and at most `max_queued` more
/// waiting for a slot, in arrival order; any further call is rejected at
/// once with [`Error::BulkheadFull`].
///
/// A cheap handle: clones share the limit.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

/// Builds a [`Bulkhead`]. Defaults: 64 concurrent calls, 64 waiting.
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    name: Option<Arc<str>>,
    max_concurrent: NonZeroUsize,
    max_queued: usize,
}

/// A slot in a bulkhead, released when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Inner {
    semaphore: Arc<Semaphore>,
    max_concurrent: usize,
    max_queued: usize,
    queued: AtomicUsize,
    rejections: Counter,
}

/// Holds a place in the wait queue; leaving it (with a slot, or because the
/// waiting caller was cancelled) frees the place.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A builder with the defaults described on [`BulkheadBuilder`].
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder {
            name: None,
            max_concurrent: NonZeroUsize::new(64).expect("64 is not zero"),
            max_queued: 64,
        }
    }

    /// Takes a slot, waiting in the queue if every slot is busy.
    ///
    /// Cancel-safe: dropping the returned future leaves the queue.
    ///
    /// # Errors
    ///
    /// [`Error::BulkheadFull`] when every slot is busy and the queue is full.
    pub async fn acquire(&self) -> Result<BulkheadPermit, Error> {
        let inner = &*self.inner;
        match Arc::clone(&inner.semaphore).try_acquire_owned() {
            Ok(permit) => return Ok(BulkheadPermit { _permit: permit }),
            Err(TryAcquireError::NoPermits) => {}
            Err(TryAcquireError::Closed) => unreachable!("the bulkhead never closes its semaphore"),
        }
        let mut queued = inner.queued.load(Ordering::Acquire);
        loop {
            if queued >= inner.max_queued {
                return Err(inner.full());
            }
            match inner.queued.compare_exchange_weak(
                queued,
                queued + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => queued = actual,
            }
        }
        let _place = QueuePlace(&inner.queued);
        let permit = Arc::clone(&inner.semaphore)
            .acquire_owned()
            .await
            .expect("the bulkhead never closes its semaphore");
        Ok(BulkheadPermit { _permit: permit })
    }

    /// Takes a slot if one is free now, without queueing.
    ///
    /// # Errors
    ///
    /// [`Error::BulkheadFull`] when every slot is busy.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, Error> {
        match Arc::clone(&self.inner.semaphore).try_acquire_owned() {
            Ok(permit) => Ok(BulkheadPermit { _permit: permit }),
            Err(_) => Err(self.inner.full()),
        }
    }

    /// Runs `future` in a slot, waiting in the queue if needed.
    ///
    /// # Errors
    ///
    /// [`CallError::Policy`] with [`Error::BulkheadFull`] if the queue is
    /// full (`future` is dropped unpolled), or [`CallError::Inner`] with the
    /// future's own error.
    pub async fn run<T, E, F>(&self, future: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let _permit = self.acquire().await.map_err(CallError::Policy)?;
        future.await.map_err(CallError::Inner)
    }

    /// Slots free right now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.inner.semaphore.available_permits()
    }

    /// Calls waiting for a slot right now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// The concurrency limit.
    #[must_use]
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The wait-queue bound.
    #[must_use]
    pub fn max_queued(&self) -> usize {
        self.inner.max_queued
    }
}

impl Inner {
    fn full(&self) -> Error {
        self.rejections.increment(1);
        Error::BulkheadFull {
            max_concurrent: self.max_concurrent,
            max_queued: self.max_queued,
        }
    }
}

impl BulkheadBuilder {
    /// A name for metrics (label `bulkhead`). Default `unnamed`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many calls may run at once. Default 64.
    pub fn max_concurrent(mut self, max: NonZeroUsize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// How many calls may wait for a slot; 0 rejects as soon as every slot is
    /// busy. Default 64.
    pub fn max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    /// Validates the settings and builds the bulkhead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `max_concurrent` exceeds what a tokio
    /// semaphore can hold, or `max_queued` exceeds `isize::MAX`.
    pub fn build(self) -> Result<Bulkhead, Error> {
        if self.max_concurrent.get() > Semaphore::MAX_PERMITS {
            return Err(Error::config(
                "bulkhead",
                "max_concurrent",
                "is larger than a semaphore can hold",
            ));
        }
        if self.max_queued > isize::MAX as usize {
            return Err(Error::config("bulkhead", "max_queued", "must fit in isize"));
        }
        let label: metrics::SharedString = match self.name {
            Some(name) => name.into(),
            None => "unnamed".into(),
        };
        Ok(Bulkhead {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(self.max_concurrent.get())),
                max_concurrent: self.max_concurrent.get(),
                max_queued: self.max_queued,
                queued: AtomicUsize::new(0),
                rejections: metrics::counter!(
                    crate::metrics::BULKHEAD_REJECTIONS_TOTAL,
                    "bulkhead" => label
                ),
            }),
        })
    }
}
