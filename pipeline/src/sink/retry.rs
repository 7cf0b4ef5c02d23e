//! When to try again: the retry schedule of a queue, with full jitter.
//!
//! The n-th retry waits a random time in `[0, schedule[n−1]]` (the last ceiling repeats), so
//! the retries of many entries that failed together spread out instead of hitting a recovering
//! endpoint at the same moment ("full jitter"). A `Retry-After` the endpoint sent is a floor:
//! the wait is never shorter than what it asked for.

use std::time::Duration;

/// The wait before retry number `retry` (1 = the first retry, after the first attempt).
pub fn delay(
    schedule: &[Duration],
    retry: u32,
    retry_after: Option<Duration>,
    rng: &mut fastrand::Rng,
) -> Duration {
    let i = (retry.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    let ceiling = schedule.get(i).copied().unwrap_or(Duration::from_secs(1));
    let jittered = ceiling.mul_f64(rng.f64());
    retry_after.map_or(jittered, |floor| jittered.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_each_ceiling_and_honour_retry_after() {
        let schedule: Vec<Duration> = [1, 10, 100].map(Duration::from_secs).to_vec();
        let mut rng = fastrand::Rng::with_seed(3);
        for (retry, ceiling) in [(1, 1), (2, 10), (3, 100), (9, 100)] {
            let mut top = Duration::ZERO;
            for _ in 0..200 {
                let d = delay(&schedule, retry, None, &mut rng);
                assert!(d <= Duration::from_secs(ceiling), "retry {retry}: {d:?}");
                top = top.max(d);
            }
            assert!(
                top > Duration::from_secs(ceiling) / 2,
                "jitter spreads up to the ceiling"
            );
        }
        let floor = Duration::from_secs(30);
        for _ in 0..50 {
            assert!(delay(&schedule, 1, Some(floor), &mut rng) >= floor);
        }
    }

    #[test]
    fn the_default_schedule_spans_about_27_6_hours() {
        let q = crate::sink::QueueConfig::new("q", crate::sink::SinkKind::Webhook);
        let total: Duration = q.retry_schedule.iter().sum();
        assert_eq!(q.max_attempts as usize, q.retry_schedule.len() + 1);
        assert_eq!(total.as_secs(), 99_305, "27 h 35 min 5 s");
    }
}
