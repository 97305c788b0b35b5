//! Directory watching: file events in the modules and instances
//! directories become debounced [`Providers::reconcile`] calls, so a file
//! dropped, replaced or removed takes effect within a second, with no
//! restart. A periodic rescan covers events the OS did not deliver (a
//! directory created after start, an overflowed inotify queue).

use crate::providers::Providers;
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last event before reconciling: a copy in
/// progress produces a stream of events; waiting for it to pause avoids
/// loading a file still being written (a partial file fails validation
/// anyway, and the next event retries).
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Quiet time after an event that says a file is complete: renamed into
/// place (`mv`, the documented way), closed after writing, or removed.
/// Only coalesces the burst of events one operation makes.
pub const SETTLE: Duration = Duration::from_millis(5);

/// Whether an event means the file it names is complete.
fn complete(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify::EventKind;
    matches!(
        kind,
        EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Remove(_)
    )
}

/// Whether an event can mean a change: not the host's own reads of the
/// files (opening, reading and closing them after reading), which would
/// otherwise make every reconciliation ask for the next one.
fn changes(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    use notify::EventKind;
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Rescan period when no event arrives.
pub const RESCAN: Duration = Duration::from_secs(5);

/// Keeps the OS watch alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `dirs` and reconciles `providers` on changes.
pub fn spawn(providers: Arc<Providers>, dirs: Vec<PathBuf>) -> WatchGuard {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if changes(&event.kind) {
                let _ = tx.send(complete(&event.kind));
            }
        }
    });
    let watcher = match watcher {
        Ok(mut w) => {
            for d in &dirs {
                if let Err(e) = w.watch(d, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot watch; rescanning every {RESCAN:?}");
                }
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no directory watching; rescanning every {RESCAN:?}");
            None
        }
    };
    let task = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(RESCAN, rx.recv()).await {
                Ok(None) => {
                    // The watcher is gone: rescan periodically.
                    tokio::time::sleep(RESCAN).await;
                }
                Ok(Some(mut done)) => {
                    // The last event decides how long to wait for quiet.
                    loop {
                        let wait = if done { SETTLE } else { DEBOUNCE };
                        match tokio::time::timeout(wait, rx.recv()).await {
                            Ok(Some(d)) => done = d,
                            _ => break,
                        }
                    }
                }
                Err(_) => {}
            }
            providers.reconcile().await;
        }
    });
    WatchGuard {
        _watcher: watcher,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
    use notify::EventKind;

    #[test]
    fn the_hosts_own_reads_are_not_changes() {
        for read in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Any),
        ] {
            assert!(!changes(&read), "{read:?}");
        }
        for change in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(changes(&change), "{change:?}");
        }
    }
}
