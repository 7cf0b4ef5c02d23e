//! Tickets that are never duplicated, with real processes on loopback: an `earshot run`
//! process delivers every mention to Salesforce, Dynamics 365, HubSpot, Zoho Desk and Zendesk
//! stand-ins ([`earshot_sim::crm`]) that keep records unique the way the real APIs do when
//! set up as the README says, and answer each create only after a delay. earshot is killed
//! with SIGKILL twice in the middle of delivering and started again each time.
//!
//! Salesforce (upsert by External ID), Dynamics (alternate key, create-only), HubSpot
//! (unique property), Zoho Desk (a search for the custom field before each create) and Zendesk
//! (`Idempotency-Key`, which refuses a retry whose body differs from the first try) end
//! with exactly one ticket per mention: the retries of requests whose answer was lost find the
//! record (counted as repeats). Mentions that continue a case (the same author again, a
//! reply) go as follow-ups, which are delivered at least once.

use std::time::Duration;

use earshot_sim::crm::CrmKind;

use crate::crm_auth::{queue, start_crm, Run};
use crate::delivery::{append, posts, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_in_the_middle_of_creating_tickets_open_no_second_one() {
    earshot::tls::ensure_crypto_provider();
    // Tokens outlive the run; each create answers 40 ms after it made the record.
    let (crm, port, _stop) =
        start_crm(Duration::from_secs(3600), 0, Duration::from_millis(40)).await;
    let rest: String = CrmKind::ALL.iter().map(|k| queue(*k, port)).collect();
    let run = Run::new(&rest);
    let (frames, expected) = posts(2103, 1500);
    append(&run.files.input, &frames);
    let created = |crm: &earshot_sim::crm::Crm| -> usize {
        CrmKind::ALL
            .iter()
            .map(|k| crm.counts(*k).tickets.len())
            .sum()
    };
    let total = expected.len() * CrmKind::ALL.len();
    let mut kills = 0;
    for target in [total / 4, total / 2] {
        let mut child = run.start();
        let reached = wait_for(Duration::from_secs(90), || created(&crm) >= target).await;
        assert!(
            reached,
            "{} of {total} tickets:\n{}",
            created(&crm),
            run.tail()
        );
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let child = run.start();
    let all = wait_for(Duration::from_secs(120), || {
        CrmKind::ALL
            .iter()
            .all(|k| crm.counts(*k).ids() == expected)
    })
    .await;
    // Read while the process still answers: a missing series is NaN and fails below.
    let dead = run.dead_letters(&CrmKind::ALL.map(CrmKind::name)).await;
    crate::delivery::terminate(child);
    eprintln!(
        "kill -9 run: {} mentions to each of {} CRMs, {kills} kills while delivering",
        expected.len(),
        CrmKind::ALL.len()
    );
    eprintln!("crm | tickets | duplicates | repeats kept from duplicating | follow-ups | follow-ups added twice | missing");
    for k in CrmKind::ALL {
        let c = crm.counts(k);
        eprintln!(
            "{} | {} | {} | {} | {} | {} | {}",
            k.name(),
            c.tickets.len(),
            c.duplicates(),
            c.repeats,
            c.followups.len(),
            c.followup_duplicates(),
            expected.difference(&c.ids()).count()
        );
    }
    assert!(all, "not every mention reached every CRM:\n{}", run.tail());
    for k in CrmKind::ALL {
        let c = crm.counts(k);
        assert_eq!(
            c.duplicates(),
            0,
            "{}: a mention became two tickets",
            k.name()
        );
        assert_eq!(c.bad_requests, 0, "{}: bad requests", k.name());
        assert_eq!(c.orphans, 0, "{}: follow-ups of no ticket", k.name());
    }
    assert_eq!(dead, 0.0, "dead letters:\n{}", run.tail());
}
