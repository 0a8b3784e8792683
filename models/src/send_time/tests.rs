use copycar_events::{Event, EventType};

use super::*;
use crate::split::Rng;

/// 2024-01-01 00:00 UTC, a Monday.
const MONDAY: i64 = 1_704_067_200_000;
const HOUR_MS: i64 = 3_600_000;

fn segment(name: &str) -> SegmentKey {
    SegmentKey {
        channel: Some("email".into()),
        segment: Some(name.into()),
    }
}

fn send(recipient: &str, segment: &SegmentKey, hours: i64, opened: bool) -> SendOutcome {
    let sent_at = MONDAY + hours * HOUR_MS + 60_000;
    SendOutcome {
        recipient: recipient.into(),
        segment: segment.clone(),
        sent_at,
        hour_of_week: hour_of_week(sent_at, 0),
        opened,
        replied: false,
    }
}

/// Sends at uniformly random hours over `weeks` weeks to `recipients`
/// recipients of segment `name`. Recipient `i` opens with probability 0.6
/// when the send's hour of day is within one hour of `preferred(i)` and 0.05
/// otherwise, and replies to a fifth of the opens.
fn planted(
    rng: &mut Rng,
    name: &str,
    recipients: usize,
    sends_each: usize,
    weeks: i64,
    preferred: impl Fn(usize) -> i64,
) -> Vec<SendOutcome> {
    let key = segment(name);
    let mut outcomes = Vec::new();
    for i in 0..recipients {
        for _ in 0..sends_each {
            let hours = (rng.next_u64() % (weeks as u64 * 168)) as i64;
            let distance = ((hours % 24) - preferred(i)).abs();
            let p = if distance.min(24 - distance) <= 1 {
                0.6
            } else {
                0.05
            };
            let mut outcome = send(&format!("{name}-{i}"), &key, hours, rng.next_f64() < p);
            outcome.replied = outcome.opened && rng.next_f64() < 0.2;
            outcomes.push(outcome);
        }
    }
    outcomes.sort_by_key(|o| o.sent_at);
    outcomes
}

fn query(recipient: &str, name: &str) -> SendTimeQuery {
    SendTimeQuery {
        recipient: Some(recipient.into()),
        channel: Some("email".into()),
        segment: Some(name.into()),
        utc_offset_minutes: 0,
    }
}

#[test]
fn join_credits_latest_send_within_window() {
    let event = |kind: EventType, recipient: &str, campaign: &str, hours: i64| {
        let mut event = Event::new("acme", kind, MONDAY + hours * HOUR_MS);
        event.recipient = Some(recipient.into());
        event.campaign = Some(campaign.into());
        event
    };
    let mut join = OutcomeJoin::new(72 * HOUR_MS);
    let mut first = event(EventType::Sent, "r1", "c1", 9);
    first
        .properties
        .insert(UTC_OFFSET_PROPERTY.into(), serde_json::json!(120));
    join.push(&first);
    join.push(&event(EventType::Sent, "r1", "c1", 30));
    join.push(&event(EventType::Open, "r1", "c1", 31));
    join.push(&event(EventType::Reply, "r1", "c1", 32));
    // A response to another campaign, and one past the window.
    join.push(&event(EventType::Open, "r1", "c2", 31));
    join.push(&event(EventType::Sent, "r2", "c1", 0));
    join.push(&event(EventType::Open, "r2", "c1", 100));
    join.push(&Event::new("acme", EventType::Sent, MONDAY));

    let (outcomes, stats) = join.finish();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(stats.sends, 4);
    assert_eq!(stats.sends_without_recipient, 1);
    assert_eq!(stats.unmatched_responses, 2);
    let r1: Vec<_> = outcomes.iter().filter(|o| o.recipient == "r1").collect();
    assert_eq!(r1[0].hour_of_week, 11, "two hours ahead of UTC");
    assert!(!r1[0].opened);
    assert!(r1[1].opened);
    assert!(r1[1].replied);
    assert_eq!(r1[1].hour_of_week, 30, "counted at the send's hour");
    assert!(
        !outcomes
            .iter()
            .find(|o| o.recipient == "r2")
            .unwrap()
            .opened
    );
}

#[test]
fn one_event_recipient_is_pulled_toward_segment() {
    let mut rng = Rng::new(7);
    // Recipients of segment `a` prefer hours from 08:00 to 12:00.
    let mut outcomes = planted(&mut rng, "a", 40, 120, 4, |i| 8 + (i % 5) as i64);
    // One opened send at Monday 20:00, far from the segment's hours.
    outcomes.push(send("solo", &segment("a"), 20, true));
    let model = fit(&outcomes, &SendTimeConfig::default()).unwrap();

    let solo = model.predict(&query("solo", "a"), Objective::Open, 168);
    assert_eq!(solo.level, Level::Recipient);
    assert_eq!(solo.observed_sends, 1.0);
    let segment_only = SendTimeQuery {
        recipient: None,
        ..query("solo", "a")
    };
    let group = model.predict(&segment_only, Objective::Open, 168);
    assert_eq!(group.level, Level::Segment);

    let at = |p: &SendTimePrediction, hour: usize| {
        p.best_hours
            .iter()
            .find(|h| h.hour_of_week == hour)
            .unwrap()
            .open_probability
    };
    let solo_at_20 = at(&solo, 20);
    let group_at_20 = at(&group, 20);
    assert!(solo_at_20 > group_at_20, "{solo_at_20} vs {group_at_20}");
    assert!(
        solo_at_20 - group_at_20 < 1.0 - solo_at_20,
        "one open should move the estimate less than halfway: {solo_at_20} vs {group_at_20}"
    );
    assert!(
        (8..=12).contains(&solo.best_hours[0].hour),
        "{:?}",
        solo.best_hours[0]
    );
    assert!(
        solo.best_hours[0].effective_sample_size < group.best_hours[0].effective_sample_size,
        "{:?} vs {:?}",
        solo.best_hours[0],
        group.best_hours[0]
    );
}

#[test]
fn strong_history_recipient_keeps_own_hour() {
    let mut rng = Rng::new(11);
    let mut outcomes = planted(&mut rng, "a", 40, 120, 4, |i| 8 + (i % 5) as i64);
    outcomes.extend(
        planted(&mut rng, "owl", 1, 600, 4, |_| 22)
            .into_iter()
            .map(|mut o| {
                o.segment = segment("a");
                o
            }),
    );
    let model = fit(&outcomes, &SendTimeConfig::default()).unwrap();

    let owl = model.predict(&query("owl-0", "a"), Objective::Open, 3);
    assert_eq!(owl.level, Level::Recipient);
    for best in &owl.best_hours {
        assert!((21..=23).contains(&best.hour), "{best:?}");
    }
    let first = &owl.best_hours[0];
    assert!(first.open_interval[0] < first.open_probability);
    assert!(first.open_interval[1] > first.open_probability);
    let group = model.predict(&query("nobody", "a"), Objective::Open, 1);
    assert_eq!(group.level, Level::Segment);
    assert!((8..=12).contains(&group.best_hours[0].hour));
}

#[test]
fn unknown_segment_falls_back_to_global() {
    let mut rng = Rng::new(3);
    let outcomes = planted(&mut rng, "a", 5, 50, 2, |_| 10);
    let model = fit(&outcomes, &SendTimeConfig::default()).unwrap();
    let prediction = model.predict(&query("nobody", "b"), Objective::Reply, 5);
    assert_eq!(prediction.level, Level::Global);
    assert_eq!(prediction.objective, Objective::Reply);
    assert_eq!(prediction.best_hours.len(), 5);
    assert_eq!(prediction.observed_sends, 250.0);
    let probabilities: Vec<f64> = prediction
        .best_hours
        .iter()
        .map(|h| h.reply_probability)
        .collect();
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "{probabilities:?}"
    );
}

#[test]
fn time_zone_shifts_utc_start_only() {
    let mut rng = Rng::new(5);
    let outcomes = planted(&mut rng, "a", 10, 100, 2, |_| 10);
    let model = fit(&outcomes, &SendTimeConfig::default()).unwrap();
    let mut east = query("a-0", "a");
    east.utc_offset_minutes = 120;
    let utc = model
        .predict(&query("a-0", "a"), Objective::Open, 1)
        .best_hours[0]
        .clone();
    let shifted = model.predict(&east, Objective::Open, 1).best_hours[0].clone();
    assert_eq!(utc.hour_of_week, shifted.hour_of_week);
    assert_eq!(
        (utc.utc_minute_of_week + 168 * 60 - 120) % (168 * 60),
        shifted.utc_minute_of_week
    );
}

#[test]
fn planted_pattern_gives_positive_lift() {
    let mut rng = Rng::new(42);
    // Each recipient prefers one of thirteen hours from 08:00 to 20:00.
    let outcomes = planted(&mut rng, "a", 150, 200, 8, |i| 8 + (i % 13) as i64);
    let split = split_by_time(&outcomes, 0.25).unwrap();
    assert!(split.train.iter().all(|o| o.sent_at < split.cutoff));
    assert!(split.test.iter().all(|o| o.sent_at >= split.cutoff));
    let model = fit(&split.train, &SendTimeConfig::default()).unwrap();
    let report = evaluate(&model, &split.train, &split.test, 500, 1);

    assert_eq!(report.test_sends, split.test.len());
    let open = &report.open;
    assert!(open.model.matched > 100, "{open:?}");
    assert!(open.baseline.matched > 100, "{open:?}");
    let lift = open.lift.unwrap();
    assert!(lift > 0.0, "{open:?}");
    let [low, high] = open.lift_interval.unwrap();
    assert!(low > 0.0, "{open:?}");
    assert!(low <= lift, "{open:?}");
    assert!(lift <= high, "{open:?}");
    assert!(report.reply.lift.unwrap() > 0.0, "{:?}", report.reply);
}

#[test]
fn uniform_outcomes_give_no_clear_lift() {
    let mut rng = Rng::new(9);
    let mut outcomes = planted(&mut rng, "a", 100, 100, 6, |_| 0);
    for outcome in &mut outcomes {
        outcome.opened = rng.next_f64() < 0.2;
    }
    let split = split_by_time(&outcomes, 0.25).unwrap();
    let model = fit(&split.train, &SendTimeConfig::default()).unwrap();
    let report = evaluate(&model, &split.train, &split.test, 500, 1);
    let [low, high] = report.open.lift_interval.unwrap();
    assert!(low < 0.0, "{:?}", report.open);
    assert!(high > 0.0, "{:?}", report.open);
    assert_eq!(
        model.strengths().recipient_open,
        SendTimeConfig::default().max_strength
    );
}

#[test]
fn saved_model_predicts_the_same() {
    let mut rng = Rng::new(13);
    let mut outcomes = planted(&mut rng, "a", 20, 60, 3, |i| 9 + (i % 4) as i64);
    outcomes.extend(planted(&mut rng, "b", 20, 60, 3, |_| 15));
    let dir = tempfile::tempdir().unwrap();
    let registry = crate::Registry::open(dir.path());
    let range = EventRange {
        log: "memory".into(),
        tenant: "acme".into(),
        first_offset: 0,
        end_offset: outcomes.len() as u64,
        description: "planted test data".into(),
    };
    let config = SendTimeConfig {
        bootstrap_samples: 200,
        ..SendTimeConfig::default()
    };
    let mut stages = Vec::new();
    let (model, card, _) =
        train_send_time(&outcomes, JoinStats::default(), range, &config, |stage| {
            stages.push(stage)
        })
        .unwrap();
    assert_eq!(stages.len(), 3);
    assert_eq!(card.data.recipients, 40);
    assert_eq!(card.data.segments, 2);
    assert_eq!(
        card.split.train_sends + card.split.test_sends,
        outcomes.len()
    );

    let version = registry.save_send_time(&model, card.clone()).unwrap();
    assert_eq!(version, "v1");
    let (loaded, loaded_card) = registry.load_send_time(&version).unwrap();
    assert_eq!(loaded_card.version, "v1");
    assert_eq!(loaded_card.holdout, card.holdout);
    assert_eq!(loaded.strengths(), model.strengths());
    for q in [query("a-3", "a"), query("x", "b"), query("x", "zzz")] {
        assert_eq!(
            loaded.predict(&q, Objective::Open, 5),
            model.predict(&q, Objective::Open, 5)
        );
    }
}

#[test]
fn empty_outcomes_are_a_training_error() {
    let error = fit(&[], &SendTimeConfig::default()).unwrap_err();
    assert!(error.to_string().contains("no sends"), "{error}");
}
