use super::*;

/// Poisson draws by inversion (fine for the small means these tests use).
fn poisson(rng: &mut fastrand::Rng, mu: f64) -> u32 {
    let mut k = 0;
    let mut p = (-mu).exp();
    let mut cdf = p;
    let u = rng.f64();
    while u > cdf && k < 10_000 {
        k += 1;
        p *= mu / k as f64;
        cdf += p;
    }
    k
}

fn settings() -> SpikeSettings {
    SpikeSettings::default()
}

fn post(i: u64, urgency: u8, followers: u64) -> SpikePost {
    SpikePost {
        mention_id: format!("m_{i}"),
        url: Some(format!("https://bsky.app/profile/u{i}/post/{i}")),
        platform: "bluesky".into(),
        author: format!("u{i}"),
        followers: Some(followers),
        text: format!("post {i}"),
        urgency,
        sentiment: "negative".into(),
    }
}

/// Runs `seconds` of traffic from `start`, `rate(t)` (all, negative) per second for brand 0,
/// and returns the events with the second they came out in.
fn run(
    d: &mut Detector,
    start: u64,
    seconds: u64,
    seed: u64,
    rate: impl Fn(u64) -> (f64, f64),
) -> Vec<(u64, SpikeEvent)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for t in start..start + seconds {
        d.advance(t, &mut events);
        out.extend(events.drain(..).map(|e| (t, e)));
        let (all, neg) = rate(t);
        let n = poisson(&mut rng, neg);
        let m = poisson(&mut rng, (all - neg).max(0.0));
        d.count(0, n + m, n);
    }
    out
}

#[test]
fn steady_traffic_raises_no_alarm_in_a_simulated_day() {
    for (seed, rate) in [(1, 0.2), (2, 2.0), (3, 20.0)] {
        let mut d = Detector::new(settings(), 0);
        d.brand("acme", BrandKind::Brand);
        let events = run(&mut d, 0, 86_400, seed, |_| (rate, rate * 0.2));
        assert!(events.is_empty(), "rate {rate}: {:?}", events.first());
    }
}

#[test]
fn a_five_fold_spike_starts_within_seconds_updates_and_ends() {
    let mut d = Detector::new(settings(), 0);
    d.brand("acme", BrandKind::Brand);
    let spike = 3600..3900;
    let events = run(&mut d, 0, 4200, 7, |t| {
        if spike.contains(&t) {
            (10.0, 2.0)
        } else {
            (2.0, 0.4)
        }
    });
    let all: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.doc.series == Series::All)
        .collect();
    let (t0, first) = all.first().expect("the spike is detected");
    assert_eq!(first.phase, Phase::Started);
    assert!(*t0 > 3600 && *t0 <= 3610, "detected at {t0}");
    assert!(first.doc.ratio >= 3.0, "{:?}", first.doc);
    assert!(first.doc.p_value < 1e-7);
    assert_eq!(first.id(), format!("{}.started", first.doc.spike_id));
    assert!(first.doc.spike_id.starts_with("spk_acme_all_"));
    let updates: Vec<_> = all
        .iter()
        .filter(|(_, e)| matches!(e.phase, Phase::Updated(_)))
        .collect();
    // 300 s of spike with an update every 30 s, and one or two as it settles.
    assert!((9..=12).contains(&updates.len()), "{}", updates.len());
    assert_eq!(
        updates[0].1.id(),
        format!("{}.updated.1", first.doc.spike_id)
    );
    let (t_end, end) = all.last().unwrap();
    assert_eq!(end.phase, Phase::Ended);
    assert!(
        *t_end >= 3900 + 60 && *t_end <= 3900 + 130,
        "ended at {t_end}"
    );
    assert!(end.doc.ended_at.is_some());
    assert!(end.doc.mentions > 2500, "{}", end.doc.mentions);
    assert_eq!(all.len(), updates.len() + 2, "one spike, not several");
    assert!(d.brands_in_spike().is_empty());
}

#[test]
fn a_negative_surge_fires_the_negative_series_first() {
    let mut d = Detector::new(settings(), 0);
    d.brand("acme", BrandKind::Brand);
    // Total doubles (not a spike by itself); negatives go from 0.2/s to 2.2/s.
    let events = run(&mut d, 0, 3700, 11, |t| {
        if t >= 3600 {
            (4.0, 2.2)
        } else {
            (2.0, 0.2)
        }
    });
    let (t, e) = events.first().expect("detected");
    assert_eq!(e.doc.series, Series::Negative);
    assert!(*t <= 3610, "{t}");
    assert!(e.doc.negative_share.unwrap() > 0.3, "{:?}", e.doc);
    assert!(events.iter().all(|(_, e)| e.doc.series == Series::Negative));
}

#[test]
fn nothing_fires_during_warmup_or_on_a_slow_rise() {
    let mut d = Detector::new(settings(), 0);
    d.brand("acme", BrandKind::Brand);
    // 50 mentions in the first minute: no baseline yet, so no judgement.
    let mut events = Vec::new();
    for t in 0..60 {
        d.advance(t, &mut events);
        d.count(0, 50, 0);
    }
    assert!(events.is_empty());
    // A rate that doubles over two hours is the day's rhythm, not a spike.
    let events = run(&mut d, 60, 7200, 5, |t| {
        let r = 2.0 * (1.0 + t as f64 / 7200.0);
        (r, r * 0.2)
    });
    assert!(events.is_empty(), "{:?}", events.first());
}

#[test]
fn a_quiet_brand_needs_min_mentions() {
    let mut s = settings();
    s.warmup = Duration::from_secs(600);
    let mut d = Detector::new(s, 0);
    d.brand("rare", BrandKind::Competitor);
    let mut events = Vec::new();
    for t in 0..3600 {
        d.advance(t, &mut events);
        if t == 3000 {
            // Far above a baseline of zero, but only five posts.
            d.count(0, 5, 5);
        }
    }
    assert!(events.is_empty(), "{events:?}");
    for t in 3600..3605 {
        d.advance(t, &mut events);
        d.count(0, 4, 0);
    }
    d.advance(3606, &mut events);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].doc.brand_kind, BrandKind::Competitor);
}

#[test]
fn events_carry_driving_terms_and_top_posts() {
    let mut d = Detector::new(settings(), 0);
    let b = d.brand("acme", BrandKind::Brand);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut events = Vec::new();
    let mut i = 0u64;
    let usual = ["order", "love", "shipping", "price", "store"];
    for t in 0..3700u64 {
        d.advance(t, &mut events);
        let surge = t >= 3600;
        let n = poisson(&mut rng, if surge { 12.0 } else { 1.0 });
        for _ in 0..n {
            i += 1;
            let mut tokens = vec![usual[rng.usize(..usual.len())].to_string()];
            if surge && rng.f64() < 0.8 {
                tokens.push("outage".into());
                tokens.push("#acmedown".into());
            }
            d.observe(
                b,
                Observation {
                    negative: surge,
                    tokens,
                    post: post(i, rng.u8(..100), rng.u64(..10_000)),
                },
            );
        }
    }
    let e = &events
        .iter()
        .find(|e| e.doc.series == Series::All)
        .expect("detected")
        .doc;
    let names: Vec<&str> = e.terms.iter().map(|t| t.term.as_str()).collect();
    assert!(
        names.len() >= 2 && names[..2].contains(&"outage"),
        "{names:?}"
    );
    assert!(names[..2].contains(&"#acmedown"), "{names:?}");
    assert!(!names.contains(&"order"), "{names:?}");
    assert_eq!(e.posts.len(), 5);
    for w in e.posts.windows(2) {
        assert!(!w[1].outranks(&w[0]), "ranked by urgency then reach");
    }
    // The snapshot shows it too.
    let active = d.active();
    assert_eq!(active.len(), 2, "both series: every surge post is negative");
    let view = &d.views()[0];
    assert_eq!(view.active, [true, true]);
    assert_eq!(view.counts.len(), HISTORY);
    assert!(view.rate > 1.0 && view.negative_share.unwrap() > 0.0);
    assert_eq!(d.brands_in_spike(), ["acme"]);
    let json = serde_json::to_value(e).unwrap();
    for key in [
        "spike_id",
        "event",
        "brand",
        "brand_kind",
        "series",
        "started_at",
        "at",
        "ended_at",
        "window_s",
        "rate",
        "baseline",
        "ratio",
        "peak_rate",
        "peak_ratio",
        "mentions",
        "negative_share",
        "p_value",
        "terms",
        "posts",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(json["series"], "all");
    assert_eq!(json["brand_kind"], "brand");
}

#[test]
fn settings_are_checked() {
    assert!(SpikeSettings::default().problems().is_empty());
    let s = SpikeSettings {
        windows: vec![Duration::from_millis(1500), Duration::from_secs(900)],
        p_value: 0.5,
        end_ratio: 5.0,
        min_mentions: 0,
        ..SpikeSettings::default()
    };
    let p = s.problems().join("\n");
    for needle in [
        "whole seconds",
        "p_value",
        "end_ratio",
        "min_mentions",
        "baseline_half_life",
        "warmup",
    ] {
        assert!(p.contains(needle), "{needle} not in {p}");
    }
}

#[test]
fn a_restart_keeps_the_baseline_and_the_active_spike() {
    let mut d = Detector::new(settings(), 0);
    d.brand("acme", BrandKind::Brand);
    d.brand("gone", BrandKind::Competitor);
    let events = run(&mut d, 0, 3700, 13, |t| {
        if t >= 3600 {
            (12.0, 2.0)
        } else {
            (2.0, 0.4)
        }
    });
    let started = &events.first().expect("detected").1.doc;
    let saved = d.save();
    let json = serde_json::to_string(&saved).unwrap();
    let saved: Saved = serde_json::from_str(&json).unwrap();
    assert_eq!(saved.brands.len(), 2);

    // Restarted 30 s later: no warmup, the spike goes on under its id and ends.
    let mut e = Detector::new(settings(), 3730);
    e.brand("acme", BrandKind::Brand);
    assert_eq!(
        e.restore(&saved),
        2,
        "both series of acme; `gone` is not configured"
    );
    assert!(e.brands_in_spike().contains(&"acme".to_string()));
    let after = run(&mut e, 3730, 600, 14, |t| {
        if t < 3800 {
            (12.0, 2.0)
        } else {
            (2.0, 0.4)
        }
    });
    let same: Vec<_> = after
        .iter()
        .filter(|(_, ev)| ev.doc.spike_id == started.spike_id)
        .collect();
    assert!(
        same.iter().all(|(_, ev)| ev.phase != Phase::Started),
        "{same:?}"
    );
    assert!(
        same.iter().any(|(_, ev)| ev.phase == Phase::Ended),
        "the restored spike ends: {after:?}"
    );
    assert!(same
        .iter()
        .any(|(_, ev)| matches!(ev.phase, Phase::Updated(n) if n > 1)));

    // A new surge right after a restart is judged at once, not after the warmup.
    let mut f = Detector::new(settings(), 10_000);
    f.brand("acme", BrandKind::Brand);
    let mut quiet = saved.clone();
    quiet.at_s = 9_990;
    for s in &mut quiet.brands[0].series {
        s.active = None;
    }
    f.restore(&quiet);
    let fresh = run(&mut f, 10_000, 120, 15, |t| {
        if t >= 10_060 {
            (20.0, 4.0)
        } else {
            (2.0, 0.4)
        }
    });
    let (t, _) = fresh.first().expect("judged without a warmup");
    assert!(*t <= 10_065, "{t}");

    // Too old a state is not used.
    let mut g = Detector::new(settings(), 20_000);
    g.brand("acme", BrandKind::Brand);
    assert_eq!(g.restore(&saved), 0);
}

#[test]
fn a_clock_ten_years_ahead_is_caught_up_in_bounded_work_and_raises_no_alarm() {
    let mut d = Detector::new(settings(), 0);
    d.brand("acme", BrandKind::Brand);
    let before = run(&mut d, 0, 7200, 5, |_| (2.0, 0.4));
    assert!(before.is_empty());
    let jump_to = 7200 + 10 * 365 * 86_400;
    // Closing every second of ten years one by one takes minutes; the catch-up bound makes
    // it the work of an hour of seconds. The thread and its deadline only tell a hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut events = Vec::new();
        d.advance(jump_to, &mut events);
        let _ = tx.send((d, events));
    });
    let (mut d, events) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the detector catches up on a ten-year jump");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(d.now(), jump_to);
    // The detector goes on second by second from there.
    let mut events = Vec::new();
    d.advance(jump_to + 5, &mut events);
    assert_eq!(d.now(), jump_to + 5);
}
