//! Fluent Bit is stopping: what the plugin's calls do then.
//!
//! The proxy ABI has no pre-stop callback (`FLBPluginOutputPreExit` runs inside exit, after
//! Grace), and without `Workers` a flush blocks the very engine thread that would process the
//! stop. So the edge watches Fluent Bit's stop signals itself, chaining to Fluent Bit's own
//! handlers, and calls `request`. From then on no call is retried, and a call under way — or the
//! one attempt of a flush that starts later — gets `WINDOW` to finish. A healthy endpoint
//! answers well within it, so what was read before the stop is still delivered; a failing one
//! makes the flush answer RETRY at once, and Fluent Bit exits within its Grace (the chunks stay
//! in its storage for the next start when `storage.type` is `filesystem`). Once an endpoint has
//! failed a call after the stop, its later calls are not tried at all: Fluent Bit may have many
//! flushes queued for a worker, and joins the worker only when all of them have answered.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

/// How long a call may still take once the stop is known. A healthy endpoint answers well
/// within it. It is under the second Fluent Bit's main loop may take to notice the signal:
/// without `Workers` the engine thread is ours until the flush returns, and Grace only starts
/// counting once it is free, so a flush under way at the stop must be back by then for Fluent
/// Bit to exit within Grace plus a second.
pub const WINDOW: Duration = Duration::from_millis(750);

/// How often the runtime looks for a stop the signal handler recorded, if the wake-up pipe
/// could not be made.
const POLL: Duration = Duration::from_millis(100);

/// Set by the signal handler, which may only store an atomic and make plain system calls.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// A pipe the signal handler writes one byte to on the first stop request: the runtime waits
/// for it instead of waking up to look (an idle plugin runs no code at all, so none of its
/// code need stay resident; see `ffi::give_back_memory_later`). Made before any handler is
/// installed; never closed.
static WAKE: once_cell::sync::Lazy<Option<(PipeReader, PipeWriter)>> =
    once_cell::sync::Lazy::new(|| std::io::pipe().ok());
/// `WAKE`'s write end for the handler (-1: none), which cannot touch the `Lazy`.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// When the runtime noticed the stop (`None` until then).
static NOTICED: once_cell::sync::Lazy<watch::Sender<Option<Instant>>> =
    once_cell::sync::Lazy::new(|| watch::channel(None).0);

/// Whether an endpoint failed a call since the stop (one per instance).
#[derive(Debug, Default)]
pub struct SinceStop {
    failed: AtomicBool,
}

impl SinceStop {
    /// Stopping, and this endpoint already failed since: not worth a try.
    pub fn given_up(&self) -> bool {
        requested() && self.failed.load(Ordering::SeqCst)
    }

    /// A call failed (or was abandoned); counts only once stopping.
    pub fn failed(&self) {
        if requested() {
            self.failed.store(true, Ordering::SeqCst);
        }
    }
}

/// Makes the wake-up pipe; called before the signal handlers are installed.
pub fn prepare() {
    if let Some((_, writer)) = WAKE.as_ref() {
        WAKE_FD.store(writer.as_raw_fd(), Ordering::SeqCst);
    }
}

/// Records the stop. Async-signal-safe: called from a signal handler. Returns the descriptor to
/// write one wake-up byte to, the first time only (so the pipe, never read, cannot fill).
pub fn request() -> Option<RawFd> {
    let first = !REQUESTED.swap(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    (first && fd >= 0).then_some(fd)
}

/// Whether Fluent Bit has been asked to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Runs on the runtime: turns the handler's flag into a notice callers can await.
pub async fn watch_for_stop() {
    prepare();
    let wake = WAKE.as_ref().and_then(|(reader, _)| reader.try_clone().ok()).and_then(crate::ffi::readiness);
    while !requested() {
        match &wake {
            // the byte is written after the flag is set, and never read: once readable, stopping
            Some(wake) => match wake.readable().await {
                Ok(mut ready) if !requested() => ready.clear_ready(),
                Ok(_) => {}
                Err(_) => sleep(POLL).await,
            },
            None => sleep(POLL).await,
        }
    }
    NOTICED.send_if_modified(|noticed| noticed.replace(noticed.unwrap_or_else(Instant::now)).is_none());
}

/// Resolves once the stop is noticed; never, if it is not.
pub async fn noticed() -> Instant {
    let mut rx = NOTICED.subscribe();
    let noticed = rx.wait_for(Option::is_some).await.ok().and_then(|at| *at);
    match noticed {
        Some(at) => at,
        // the sender is a static: it is never dropped
        None => std::future::pending().await,
    }
}

/// Resolves when a call that began at `began` must give up: `WINDOW` after the later of the
/// stop and its start (a call starting after the stop gets its own window).
pub async fn window_closed(began: Instant) {
    let stop = noticed().await;
    sleep_until(stop.max(began) + WINDOW).await;
}
