//! Threads become one case, with real processes on loopback: an `earshot run` process delivers
//! a handful of conversations to Salesforce, Dynamics 365, HubSpot, Zoho Desk and Zendesk
//! stand-ins ([`earshot_sim::crm`]) that give each ticket an id and check every follow-up
//! against it.
//!
//! A reply to a mention, a reply deeper in its conversation (naming it as the root), and the
//! same author's next post within the queue's window become comments or notes on the first
//! mention's ticket; an unrelated post opens a ticket of its own. All posts arrive at once,
//! so the ones continuing a case wait for the create that opens it. A post deleted afterwards
//! becomes a note on its ticket.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use earshot_core::mention::mention_id;
use earshot_core::post::Platform;
use earshot_sim::crm::CrmKind;

use crate::crm_auth::{queue, start_crm, Run};
use crate::delivery::{append, terminate, wait_for};

/// A Jetstream post create by `did` with record key `rkey`, replying to `parent` within
/// `root` when given.
fn post(did: &str, rkey: &str, text: &str, reply: Option<(&str, &str)>) -> String {
    let mut record = serde_json::json!({
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": "2026-12-07T10:00:00.000Z",
        "langs": ["en"],
    });
    if let Some((parent, root)) = reply {
        record["reply"] = serde_json::json!({
            "parent": {"uri": parent, "cid": "bafyparent"},
            "root": {"uri": root, "cid": "bafyroot"},
        });
    }
    serde_json::json!({
        "did": did,
        "time_us": 1_765_000_000_000_000u64,
        "kind": "commit",
        "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
            "rkey": rkey, "cid": "c", "record": record},
    })
    .to_string()
}

/// A Jetstream delete of `did`'s post `rkey`.
fn deleted(did: &str, rkey: &str) -> String {
    serde_json::json!({
        "did": did, "time_us": 1_765_000_000_000_001u64, "kind": "commit",
        "commit": {"rev": "r2", "operation": "delete", "collection": "app.bsky.feed.post", "rkey": rkey},
    })
    .to_string()
}

fn uri(did: &str, rkey: &str) -> String {
    format!("at://{did}/app.bsky.feed.post/{rkey}")
}

fn id(did: &str, rkey: &str) -> String {
    mention_id(Platform::Bluesky, &uri(did, rkey))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_an_authors_next_post_become_follow_ups_of_one_ticket() {
    earshot::tls::ensure_crypto_provider();
    let (crm, port, _stop) =
        start_crm(Duration::from_secs(3600), 0, Duration::from_millis(30)).await;
    let mut rest: String = CrmKind::ALL.iter().map(|k| queue(*k, port)).collect();
    // A file queue keeps its lines: a deletion is counted there, not written.
    rest += "[[queue]]\nid = \"archive\"\nsink = \"file\"\npath = \"archive.ndjson\"\n\
             [[route]]\nqueue = \"archive\"\n";
    let run = Run::new(&rest);
    let (alice, bob, carol, dave, erin, frank, zed) = (
        "did:plc:alice",
        "did:plc:bob",
        "did:plc:carol",
        "did:plc:dave",
        "did:plc:erin",
        "did:plc:frank",
        "did:plc:zed",
    );
    let carol_post = uri(carol, "3c1");
    let frames = [
        post(
            alice,
            "3a1",
            "Acme support has not answered my refund request for a week",
            None,
        ),
        post(
            bob,
            "3b1",
            "Same here, Acme support ignored my ticket too",
            Some((&uri(alice, "3a1"), &uri(alice, "3a1"))),
        ),
        post(
            alice,
            "3a2",
            "Still nothing from Acme support, day eight now",
            None,
        ),
        post(
            carol,
            "3c1",
            "My Acme rocket skates arrived broken, who do I call",
            None,
        ),
        post(
            dave,
            "3d1",
            "Acme support told me the skates are out of warranty",
            Some((&carol_post, &uri(zed, "3z0"))),
        ),
        post(
            erin,
            "3e1",
            "Acme support is the worst, broken skates here as well",
            Some((&uri(zed, "3z9"), &carol_post)),
        ),
        post(
            frank,
            "3f1",
            "Acme support line has been busy since this morning",
            None,
        ),
    ];
    append(&run.files.input, &frames);
    let cases: BTreeMap<String, BTreeSet<String>> = [
        (
            id(alice, "3a1"),
            vec![id(alice, "3a1"), id(bob, "3b1"), id(alice, "3a2")],
        ),
        (
            id(carol, "3c1"),
            vec![id(carol, "3c1"), id(dave, "3d1"), id(erin, "3e1")],
        ),
        (id(frank, "3f1"), vec![id(frank, "3f1")]),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_iter().collect()))
    .collect();
    let all: BTreeSet<String> = cases.values().flatten().cloned().collect();
    let child = run.start();
    let done = wait_for(Duration::from_secs(60), || {
        CrmKind::ALL.iter().all(|k| crm.counts(*k).ids() == all)
    })
    .await;
    // Alice deletes her first post: each CRM gets a note on its ticket.
    append(&run.files.input, &[deleted(alice, "3a1")]);
    let noted = wait_for(Duration::from_secs(30), || {
        CrmKind::ALL.iter().all(|k| {
            let c = crm.counts(*k);
            c.deletions.get(&id(alice, "3a1")) == c.ticket_ids.get(&id(alice, "3a1"))
                && c.deletions.len() == 1
        })
    })
    .await;
    let opened = run
        .metric("earshot_case_mentions_total{queue=\"zoho\",kind=\"opened\"}")
        .await;
    let followed = run
        .metric("earshot_case_mentions_total{queue=\"zoho\",kind=\"followup\"}")
        .await;
    let archive_not_sent = run
        .metric("earshot_queue_deletes_total{queue=\"archive\",outcome=\"not_sent\"}")
        .await;
    let archive_notified = run
        .metric("earshot_queue_deletes_total{queue=\"archive\",outcome=\"notified\"}")
        .await;
    let zendesk_notified = run
        .metric("earshot_queue_deletes_total{queue=\"zendesk\",outcome=\"notified\"}")
        .await;
    let dead = run.dead_letters(&CrmKind::ALL.map(CrmKind::name)).await;
    terminate(child);
    assert!(done, "not every mention reached every CRM:\n{}", run.tail());
    assert!(
        noted,
        "a note of the deletion on each CRM's ticket:\n{}",
        run.tail()
    );
    eprintln!("crm | tickets | follow-ups | cases as expected");
    for k in CrmKind::ALL {
        let c = crm.counts(k);
        eprintln!(
            "{} | {} | {} | {}",
            k.name(),
            c.tickets.len(),
            c.followups.len(),
            c.cases() == cases
        );
        assert_eq!(
            c.cases(),
            cases,
            "{}: tickets and their follow-ups",
            k.name()
        );
        assert_eq!(c.duplicates(), 0, "{}", k.name());
        assert_eq!(c.followup_duplicates(), 0, "{}", k.name());
        assert_eq!((c.orphans, c.bad_requests), (0, 0), "{}", k.name());
    }
    assert_eq!(
        (opened, followed),
        (Some(3.0), Some(4.0)),
        "zoho's case metrics"
    );
    assert_eq!(
        (archive_not_sent, archive_notified, zendesk_notified),
        (Some(1.0), Some(0.0), Some(1.0)),
        "the file queue counts the deletion as not sent; a CRM notes it"
    );
    let archived = std::fs::read_to_string(run.files.dir.join("archive.ndjson")).unwrap();
    assert_eq!(
        archived.lines().count(),
        7,
        "the archive keeps every mention's line"
    );
    assert_eq!(dead, 0.0, "dead letters:\n{}", run.tail());
}

/// A follow-up whose ticket was deleted in the CRM meanwhile (404) opens a ticket of its own,
/// and the conversation goes on there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_of_a_deleted_ticket_opens_a_new_one_that_the_thread_continues() {
    earshot::tls::ensure_crypto_provider();
    let (crm, port, _stop) = start_crm(Duration::from_secs(3600), 0, Duration::ZERO).await;
    let rest: String = CrmKind::ALL.iter().map(|k| queue(*k, port)).collect();
    let run = Run::new(&rest);
    let alice = "did:plc:alice";
    let child = run.start();
    let say = |rkey: &str, text: &str| post(alice, rkey, text, None);
    append(
        &run.files.input,
        &[say(
            "3a1",
            "Acme support has not answered my refund request",
        )],
    );
    let first = id(alice, "3a1");
    let opened = wait_for(Duration::from_secs(30), || {
        CrmKind::ALL
            .iter()
            .all(|k| crm.counts(*k).ticket_ids.contains_key(&first))
    })
    .await;
    assert!(opened, "the first ticket everywhere:\n{}", run.tail());
    for k in CrmKind::ALL {
        let ticket = crm.counts(k).ticket_ids[&first].clone();
        crm.forget(k, &ticket);
    }
    // The same author again: a follow-up of a ticket that is gone, so a ticket of its own.
    append(
        &run.files.input,
        &[say("3a2", "Still nothing from Acme support, day eight now")],
    );
    let second = id(alice, "3a2");
    let reopened = wait_for(Duration::from_secs(30), || {
        CrmKind::ALL
            .iter()
            .all(|k| crm.counts(*k).ticket_ids.contains_key(&second))
    })
    .await;
    assert!(reopened, "a new ticket everywhere:\n{}", run.tail());
    // And again: a follow-up of the new ticket.
    append(
        &run.files.input,
        &[say(
            "3a3",
            "Acme support finally called back, still no refund",
        )],
    );
    let third = id(alice, "3a3");
    let followed = wait_for(Duration::from_secs(30), || {
        CrmKind::ALL
            .iter()
            .all(|k| crm.counts(*k).followups.contains_key(&third))
    })
    .await;
    let dead = run.dead_letters(&CrmKind::ALL.map(CrmKind::name)).await;
    terminate(child);
    assert!(followed, "a follow-up of the new ticket:\n{}", run.tail());
    for k in CrmKind::ALL {
        let c = crm.counts(k);
        assert_eq!(
            c.followups[&third],
            [c.ticket_ids[&second].clone()],
            "{}: the thread goes on at the new ticket",
            k.name()
        );
        assert_eq!(
            c.orphans,
            1,
            "{}: the follow-up of the deleted ticket",
            k.name()
        );
        assert_eq!((c.duplicates(), c.bad_requests), (0, 0), "{}", k.name());
    }
    assert_eq!(dead, 0.0, "dead letters:\n{}", run.tail());
}
