//! The pool against misbehaving workers from fixtures/faults.
