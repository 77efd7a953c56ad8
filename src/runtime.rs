//! The tokio runtime's life. Registrations are counted (hot reload and a `.so` listed twice
//! both register more than once); the runtime starts at the first Init — never earlier, since
//! Fluent Bit may fork to daemonise after Register — and is stopped, its threads joined, when
//! the last registration is unregistered.

use crate::sync::lock;
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

struct State {
    registrations: usize,
    runtime: Option<Running>,
}

/// The runtime, driven by its own thread until told to stop.
struct Running {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

static STATE: Mutex<State> = Mutex::new(State { registrations: 0, runtime: None });

/// How long a blocking thread waits for more work before it exits.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long the last Unregister waits for in-flight tasks before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn state() -> std::sync::MutexGuard<'static, State> {
    lock(&STATE)
}

/// Called by every Register.
pub fn register() {
    state().registrations += 1;
}

/// Called by every Unregister; the last one stops the runtime and joins its threads, and
/// returns true.
pub fn unregister() -> bool {
    let runtime = {
        let mut s = state();
        s.registrations = s.registrations.saturating_sub(1);
        if s.registrations > 0 {
            return false;
        }
        s.runtime.take()
    };
    if let Some(running) = runtime {
        let _ = running.stop.send(());
        let _ = running.thread.join();
    }
    true
}

/// The runtime's handle, starting it on first use.
pub fn handle() -> std::io::Result<Handle> {
    let mut s = state();
    if let Some(running) = &s.runtime {
        return Ok(running.handle.clone());
    }
    // One thread: records are decoded and encoded on Fluent Bit's own flush threads; what is
    // left here is signing, TLS and the SDK (the sockets wait without a thread), and a second
    // worker cost more in hand-offs between threads than it gave (docs/PERFORMANCE.md). A
    // current-thread scheduler on a thread of ours rather than a multi-thread one with one
    // worker: no work-stealing machinery to pay for, and nothing that wakes libm (the
    // multi-thread scheduler's poll-time average calls `pow`, which kept 0.25 MiB of libm
    // mapped in an idle Fluent Bit).
    let rt = Builder::new_current_thread()
        .max_blocking_threads(4)
        // the blocking threads only resolve names for new connections: retire them soon, so an
        // idle plugin has no thread that wakes up (see `ffi::give_back_memory_later`)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .thread_name("cloudwatch_rs")
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("cloudwatch_rs".into()).spawn(move || {
        // every task runs here, and Init's `Handle::block_on` relies on this thread driving
        // the sockets and timers; a dropped sender stops it as well
        rt.block_on(async {
            let _ = stopped.await;
        });
        rt.shutdown_timeout(SHUTDOWN_GRACE);
    })?;
    handle.spawn(crate::stop::watch_for_stop());
    s.runtime = Some(Running { handle: handle.clone(), stop, thread });
    Ok(handle)
}

/// The handle only if the runtime is running (flushes never start it).
pub fn running() -> Option<Handle> {
    state().runtime.as_ref().map(|running| running.handle.clone())
}
