//! A `metrics` recorder for tests: every counter, gauge and histogram by its
//! rendered key (`name{label=value,…}`, labels sorted), to install with
//! `metrics::with_local_recorder`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// A recorder that keeps counter, gauge and histogram values by rendered key.
#[derive(Debug, Default)]
pub struct TestRecorder {
    values: Arc<Mutex<BTreeMap<String, f64>>>,
    /// Handles registered, of every kind.
    registered: AtomicUsize,
}

struct Cell {
    key: String,
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Cell {
    fn set(&self, value: f64) {
        self.values
            .lock()
            .expect("not poisoned")
            .insert(self.key.clone(), value);
    }
    fn add(&self, delta: f64) {
        let mut values = self.values.lock().expect("not poisoned");
        *values.entry(self.key.clone()).or_insert(0.0) += delta;
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.add(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.set(value as f64);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.add(value);
    }
    fn decrement(&self, value: f64) {
        self.add(-value);
    }
    fn set(&self, value: f64) {
        Cell::set(self, value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        // Count samples.
        self.add(1.0);
    }
}

impl TestRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        self.registered.fetch_add(1, Ordering::Relaxed);
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: Arc::clone(&self.values),
        })
    }

    /// The value of `key` as rendered (`name{label=value,…}`; a histogram's
    /// is its count of samples).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.lock().expect("not poisoned").get(key).copied()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

impl TestRecorder {
    /// How many keys hold a value.
    pub fn len(&self) -> usize {
        self.values.lock().expect("not poisoned").len()
    }

    /// Whether no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many handles were registered, of every kind.
    pub fn registered(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }
}
