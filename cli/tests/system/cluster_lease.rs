//! Leases on a three-server NATS cluster, each contender on a node of its own connected to a
//! server of its own: one holder at a time, a standby takes over a holder that dies without a
//! word (as a kill -9 leaves it) within the lease's time to live and a poll, the lease goes on
//! through the kill -9 of a NATS server, and a holder that stops gracefully hands over at the
//! next poll. Every contender's own view is sampled every few milliseconds throughout: never
//! do two of them count the lease as theirs at once.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use earshot::cluster::lease::{bucket_config, Lease, LeaseSettings};
use earshot::shutdown::{self, ShutdownTrigger};

use crate::support::nats::NatsCluster;

/// Short timings, so that the test takes seconds: a 2 s lease renewed every 500 ms.
const SETTINGS: LeaseSettings = LeaseSettings {
    ttl: Duration::from_secs(2),
    renew_every: Duration::from_millis(500),
    poll_every: Duration::from_millis(200),
    margin: Duration::from_millis(300),
};

/// The lease bucket, through each server in turn (the first call waits for the cluster's
/// JetStream to elect its leader).
async fn buckets(cluster: &NatsCluster) -> Vec<kv::Store> {
    let mut stores = Vec::new();
    for (i, server) in cluster.servers.iter().enumerate() {
        let client = async_nats::connect(server.url()).await.expect("connect");
        let js = jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        let store = loop {
            let made = if i == 0 {
                js.create_key_value(bucket_config("earshot_leases", &SETTINGS, 3))
                    .await
                    .map_err(|e| e.to_string())
            } else {
                js.get_key_value("earshot_leases")
                    .await
                    .map_err(|e| e.to_string())
            };
            match made {
                Ok(store) => break store,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no lease bucket: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        stores.push(store);
    }
    stores
}

/// Samples every contender's view every 5 ms for `span`, failing if two hold at once;
/// returns the holder at the end, if any, and when it last changed from `from` (zero if it
/// never did). With `stop_when_held`, stops at the first change to a holder.
async fn watch(
    leases: &[Option<Lease>],
    span: Duration,
    stop_when_held: bool,
    from: Option<usize>,
) -> (Option<usize>, Duration) {
    let start = Instant::now();
    let mut last = from;
    let mut since = Duration::ZERO;
    while start.elapsed() < span {
        let holders: Vec<usize> = leases
            .iter()
            .enumerate()
            .filter(|(_, l)| l.as_ref().is_some_and(Lease::holds))
            .map(|(i, _)| i)
            .collect();
        assert!(holders.len() <= 1, "two holders at once: {holders:?}");
        let now = holders.first().copied();
        if now != last {
            last = now;
            since = start.elapsed();
            if stop_when_held && now.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (last, since)
}

fn contenders(stores: &[kv::Store], trigger: &ShutdownTrigger) -> Vec<Option<Lease>> {
    stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            Some(Lease::spawn(
                store.clone(),
                "source.bluesky".into(),
                format!("node-{i}"),
                SETTINGS,
                trigger.subscribe(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_through_a_holder_crash_a_server_kill_and_a_handover() {
    SETTINGS.validate().unwrap();
    let mut cluster = NatsCluster::start(3);
    let stores = buckets(&cluster).await;
    let (trigger, _) = shutdown::channel();
    let mut leases = contenders(&stores, &trigger);

    let (first, _) = watch(&leases, Duration::from_secs(10), true, None).await;
    let first = first.expect("nobody took the lease");
    // Steady state: the holder keeps it.
    let (still, changed) = watch(&leases, SETTINGS.ttl * 2, false, Some(first)).await;
    assert_eq!(
        (still, changed),
        (Some(first), Duration::ZERO),
        "the lease moved"
    );

    // The holder dies without a word.
    leases[first].take().unwrap().abandon();
    let (second, takeover) = watch(&leases, SETTINGS.ttl * 5, true, None).await;
    let second = second.expect("no standby took over");
    assert_ne!(second, first);
    eprintln!("lease takeover after a holder crash: {takeover:?}");
    // At most a time to live (the entry's expiry) and a poll, plus the server's expiry sweep.
    assert!(
        takeover <= SETTINGS.ttl * 3,
        "takeover took {takeover:?} for a lease of {:?}",
        SETTINGS.ttl
    );

    // The NATS server the holder is connected to is killed: its client reconnects to another
    // member, and the lease stays with one node at a time.
    cluster.servers[second].kill();
    let (holder, _) = watch(&leases, SETTINGS.ttl * 4, false, Some(second)).await;
    let holder = holder.expect("nobody holds the lease after the server kill");
    eprintln!("after killing server n{second}: node-{holder} holds the lease");

    // A graceful stop of every contender releases the lease: its key is gone at once.
    trigger.trigger();
    for lease in leases.into_iter().flatten() {
        lease.finished().await;
    }
    let alive = cluster
        .servers
        .iter()
        .position(|s| std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok())
        .unwrap();
    let entry = stores[alive].entry("source.bluesky").await.unwrap();
    assert!(
        entry
            .as_ref()
            .is_none_or(|e| e.operation != kv::Operation::Put),
        "the lease was not released: {entry:?}"
    );
}
