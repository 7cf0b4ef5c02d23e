//! Shutdown signal: one sender (signals, `--duration`, tests), any number of listeners.
//!
//! Only sources and the admin server listen: they stop reading and drop their channel
//! senders, and everything downstream ends when its input channel drains (STYLE: shutdown by
//! closing channels front to back).
//!
//! Two levels: a graceful shutdown ([`ShutdownTrigger::trigger`]: drain, within deadlines),
//! and a forced one ([`ShutdownTrigger::force`], a second Ctrl-C or SIGTERM: stop now, leaving
//! what is undelivered in the outbox for the next start).

use tokio::sync::watch;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const FORCED: u8 = 2;

/// Triggers shutdown for every [`Shutdown`] made from it.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<u8>);

/// A listener for the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<u8>);

/// A new trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(RUNNING);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals a graceful shutdown; idempotent.
    pub fn trigger(&self) {
        self.0.send_if_modified(|level| {
            let was = *level;
            *level = was.max(DRAINING);
            *level != was
        });
    }

    /// Signals that shutdown must end now (it also counts as [`ShutdownTrigger::trigger`]).
    pub fn force(&self) {
        self.0.send_replace(FORCED);
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() >= DRAINING
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has been signalled.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() >= DRAINING
    }

    /// Whether shutdown must end now.
    pub fn is_forced(&self) -> bool {
        *self.0.borrow() >= FORCED
    }

    /// Completes once shutdown is signalled (at once if it already was, or if every trigger
    /// is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|v| *v >= DRAINING).await;
    }

    /// Completes once shutdown must end now; never if every trigger is gone without that.
    pub async fn forced(&mut self) {
        if self.0.wait_for(|v| *v >= FORCED).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_see_the_trigger() {
        let (trigger, mut a) = channel();
        let mut b = trigger.subscribe();
        assert!(!a.is_shutdown());
        trigger.trigger();
        a.recv().await;
        b.recv().await;
        assert!(b.is_shutdown());
        assert!(!b.is_forced());
        trigger.force();
        b.forced().await;
        assert!(a.is_forced() && a.is_shutdown());
        trigger.trigger();
        assert!(a.is_forced(), "a later trigger does not undo a force");
    }
}
