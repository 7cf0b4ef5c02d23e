//! Health: which long-running parts of earshot are running, which have stopped or failed, and
//! what happens when any of them panics.
//!
//! Every worker thread, queue dispatcher, source task, the spike monitor and the outbox writer
//! registers a [`Component`] here when it starts and holds its [`Handle`] while it runs.
//! `/readyz` reads [`Health::problems`]: a part that panicked, one that reports a failure it is
//! riding out (the outbox cannot write), or one that stopped on an error (a source with a bad
//! URL) makes earshot not ready, with the part named in the answer.
//! Nothing can stop silently: a thread's handle sees the thread unwind, a task's wrapper
//! ([`Handle::watch`]) sees the task's panic.
//!
//! The panic policy ([`install_panic_hook`]): a panic anywhere is a bug, and the state around
//! it cannot be trusted. The hook logs it (thread, location, message), counts it in
//! `earshot_panics_total{thread}`, and starts a clean shutdown: sources stop, what was routed
//! is committed, queues deliver until the drain deadline, and the process exits non-zero
//! ([`panicked`]) so its supervisor restarts it. Positions only ever move after their work is
//! committed, so the restart re-reads whatever the panic interrupted.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::FutureExt as _;

use crate::metrics::PANICS;
use crate::shutdown::ShutdownTrigger;

/// The kinds of long-running part, for labels and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A worker thread.
    Worker,
    /// A queue's dispatcher task.
    Dispatcher,
    /// The spike monitor thread.
    Monitor,
    /// The outbox writer thread.
    Outbox,
    /// A source's task.
    Source,
    /// A cluster role's task (a source's ingester, the frame consumer, a queue's deliverer).
    Cluster,
}

impl Component {
    /// Every kind.
    pub const ALL: [Component; 6] = [
        Component::Worker,
        Component::Dispatcher,
        Component::Monitor,
        Component::Outbox,
        Component::Source,
        Component::Cluster,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Worker => "worker",
            Component::Dispatcher => "dispatcher",
            Component::Monitor => "monitor",
            Component::Outbox => "outbox",
            Component::Source => "source",
            Component::Cluster => "cluster",
        }
    }
}

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;
const PANICKED: u8 = 2;

#[derive(Debug)]
struct Part {
    component: Component,
    name: String,
    state: AtomicU8,
    /// A failure the part is riding out (it keeps running and retrying), for `/readyz`.
    failing: Mutex<Option<String>>,
}

/// The registry of a running pipeline's parts.
#[derive(Debug, Default)]
pub struct Health {
    parts: Mutex<Vec<Arc<Part>>>,
}

/// A part's hold on its entry: dropped when the part ends. A drop while the thread unwinds
/// marks the part panicked; any other drop marks it stopped.
#[derive(Debug)]
pub struct Handle(Arc<Part>);

impl Health {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a part that starts running now.
    pub fn register(&self, component: Component, name: impl Into<String>) -> Handle {
        let part = Arc::new(Part {
            component,
            name: name.into(),
            state: AtomicU8::new(RUNNING),
            failing: Mutex::new(None),
        });
        lock(&self.parts).push(part.clone());
        Handle(part)
    }

    /// What keeps earshot from being ready: each part that panicked or reports a failure, as
    /// `"<name>: <what>"`. Parts that finished normally (at shutdown) are not problems.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.parts)
            .iter()
            .filter_map(|p| match p.state.load(Ordering::Relaxed) {
                PANICKED => Some(format!("{}: panicked", p.name)),
                _ => lock(&p.failing)
                    .as_ref()
                    .map(|why| format!("{}: {why}", p.name)),
            })
            .collect()
    }

    /// How many parts of `component` are running now.
    pub fn running(&self, component: Component) -> usize {
        lock(&self.parts)
            .iter()
            .filter(|p| p.component == component && p.state.load(Ordering::Relaxed) == RUNNING)
            .count()
    }
}

impl Handle {
    /// Reports a failure the part is riding out (shown by `/readyz` until [`Handle::recovered`]).
    pub fn failing(&self, why: impl Into<String>) {
        *lock(&self.0.failing) = Some(why.into());
    }

    /// The failure reported by [`Handle::failing`] is over.
    pub fn recovered(&self) {
        *lock(&self.0.failing) = None;
    }

    /// Runs `task` as this part: when the task panics, the part is marked panicked before the
    /// panic goes on to the task's `JoinHandle`. (A task's state is dropped after tokio caught
    /// the panic, where the drop can no longer tell.)
    pub async fn watch<F: Future>(self, task: F) -> F::Output {
        match AssertUnwindSafe(task).catch_unwind().await {
            Ok(v) => v,
            Err(panic) => {
                self.0.state.store(PANICKED, Ordering::Relaxed);
                std::panic::resume_unwind(panic)
            }
        }
    }
}

impl Handle {
    /// [`Handle::watch`] for a task that may end with an error retrying cannot fix: the error
    /// stays in [`Health::problems`] (`"<name>: stopped: <error>"`) after the part has ended,
    /// so `/readyz` keeps saying why until a restart.
    pub async fn watch_result<T, E, F>(self, task: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: Future<Output = Result<T, E>>,
    {
        let part = self.0.clone();
        let result = self.watch(task).await;
        if let Err(e) = &result {
            *lock(&part.failing) = Some(format!("stopped: {e}"));
        }
        result
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let state = if std::thread::panicking() {
            PANICKED
        } else {
            STOPPED
        };
        let _ = self
            .0
            .state
            .compare_exchange(RUNNING, state, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves nothing half-written (each holds a
    // plain value), so a poisoned lock is still good to read.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);
static SHUTDOWN: OnceLock<Mutex<Option<ShutdownTrigger>>> = OnceLock::new();

/// Whether any thread of this process has panicked since the hook was installed: the process
/// must exit non-zero.
pub fn panicked() -> bool {
    PANICKED_ONCE.load(Ordering::Relaxed)
}

/// Installs the process's panic hook (see the module docs), which triggers `trigger` on the
/// first panic. The previous hook (the default one prints the message and, with
/// `RUST_BACKTRACE`, a backtrace) still runs first. Called once by the binary; a second call
/// only replaces the trigger.
pub fn install_panic_hook(trigger: ShutdownTrigger) {
    let slot = SHUTDOWN.get_or_init(|| Mutex::new(None));
    let first = lock(slot).replace(trigger).is_none();
    if !first {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(thread = name, %location, %message,
            "a panic: earshot shuts down cleanly and exits non-zero so that its supervisor restarts it");
        metrics::counter!(PANICS, "thread" => thread_label(name)).increment(1);
        PANICKED_ONCE.store(true, Ordering::Relaxed);
        if let Some(t) = SHUTDOWN.get().and_then(|s| lock(s).clone()) {
            t.trigger();
        }
    }));
}

/// The `thread` label of a thread name: a bounded set, whatever the names.
pub fn thread_label(name: &str) -> &'static str {
    if name.starts_with("earshot-worker") {
        "worker"
    } else if name.starts_with("earshot-outbox") {
        "outbox"
    } else if name.starts_with("earshot-spikes") {
        "monitor"
    } else if name.starts_with("tokio-runtime") {
        "async"
    } else if name == "main" {
        "main"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_is_reported_and_one_that_ends_is_not() {
        let health = Health::new();
        let ok = health.register(Component::Worker, "worker 0");
        let bad = health.register(Component::Worker, "worker 1");
        assert_eq!(health.running(Component::Worker), 2);
        assert!(health.problems().is_empty());
        std::thread::spawn(move || drop(ok)).join().unwrap();
        let joined = std::thread::spawn(move || {
            let _held = bad;
            panic!("injected");
        })
        .join();
        assert!(joined.is_err());
        assert_eq!(health.running(Component::Worker), 0);
        assert_eq!(health.problems(), vec!["worker 1: panicked".to_string()]);
    }

    #[tokio::test]
    async fn a_task_that_panics_is_reported_through_its_watch() {
        let health = Health::new();
        let h = health.register(Component::Dispatcher, "dispatcher support");
        let task = tokio::spawn(h.watch(async {
            tokio::task::yield_now().await;
            panic!("injected");
        }));
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(
            health.problems(),
            vec!["dispatcher support: panicked".to_string()]
        );
    }

    #[test]
    fn a_failure_being_ridden_out_shows_until_it_is_over() {
        let health = Health::new();
        let h = health.register(Component::Outbox, "outbox writer");
        h.failing("cannot write to the outbox: No space left on device");
        assert_eq!(
            health.problems(),
            vec!["outbox writer: cannot write to the outbox: No space left on device".to_string()]
        );
        h.recovered();
        assert!(health.problems().is_empty());
        assert_eq!(health.running(Component::Outbox), 1);
    }

    #[test]
    fn thread_labels_are_bounded() {
        assert_eq!(thread_label("earshot-worker-3"), "worker");
        assert_eq!(thread_label("earshot-outbox"), "outbox");
        assert_eq!(thread_label("earshot-spikes"), "monitor");
        assert_eq!(thread_label("tokio-runtime-worker"), "async");
        assert_eq!(thread_label("anything else"), "other");
    }

    #[tokio::test]
    async fn a_task_that_stops_on_an_error_stays_a_problem_and_one_that_ends_well_does_not() {
        let health = Health::new();
        let ok: Result<(), String> = health
            .register(Component::Source, "source a")
            .watch_result(async { Ok(()) })
            .await;
        assert!(ok.is_ok());
        assert!(health.problems().is_empty());
        let failed: Result<(), String> = health
            .register(Component::Source, "source b")
            .watch_result(async { Err("bad url wss://x/…: scheme".to_string()) })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            health.problems(),
            ["source b: stopped: bad url wss://x/…: scheme"]
        );
        assert_eq!(health.running(Component::Source), 0);
    }
}
