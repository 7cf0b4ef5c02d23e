//! Shutdown signal: one sender (signals, `--duration`, tests), any number of listeners.
//!
//! Only sources and the admin server listen: they stop reading and drop their channel
//! senders, and everything downstream ends when its input channel drains (STYLE: shutdown by
//! closing channels front to back).

use tokio::sync::watch;

/// Triggers shutdown for every [`Shutdown`] made from it.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A listener for the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals shutdown; idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has been signalled.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown is signalled (at once if it already was, or if every trigger
    /// is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
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
    }
}
