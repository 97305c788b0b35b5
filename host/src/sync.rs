//! Locking that survives a panicked holder: the host's mutexes guard plain
//! data (maps, counters) that stays consistent between statements, so a
//! panic elsewhere must not turn every later lock into a second panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data over from a holder that panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
