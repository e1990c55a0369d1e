//! What the engine does when its own requests contend: it re-reads and decides again after a
//! jittered, growing pause, until a deadline; past it the caller gets 503 `unavailable` with
//! `Retry-After`, never a 409 it did not cause.
//!
//! The pause is "full jitter" (a random time up to the current cap, which doubles from
//! [`FIRST_CAP`] to [`MAX_CAP`]): contending requests spread out instead of colliding again.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a request keeps retrying its own contention before answering 503.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// The first pause is at most this long.
pub const FIRST_CAP: Duration = Duration::from_millis(10);
/// No pause is longer than this.
pub const MAX_CAP: Duration = Duration::from_millis(400);

/// The retry state of one operation.
#[derive(Debug)]
pub struct Backoff {
    deadline: Instant,
    cap: Duration,
    /// Attempts made so far (1 after the first `wait`).
    pub retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// Retries until [`DEADLINE`] from now.
    pub fn new() -> Self {
        Backoff::within(DEADLINE)
    }

    pub fn within(budget: Duration) -> Self {
        Backoff {
            deadline: Instant::now() + budget,
            cap: FIRST_CAP,
            retries: 0,
        }
    }

    /// The next pause: a random time up to the cap, never past the deadline; `None` once the
    /// deadline has passed.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let jitter = ulid::Ulid::generate().random() as u64;
        let cap_micros = self.cap.as_micros().max(1) as u64;
        let pause = Duration::from_micros(jitter % (cap_micros + 1)).min(left);
        self.cap = (self.cap * 2).min(MAX_CAP);
        self.retries += 1;
        Some(pause)
    }

    /// Waits before the next attempt; 503 `unavailable` once the deadline has passed.
    pub async fn wait(&mut self) -> Result<()> {
        match self.next_pause() {
            Some(pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
            None => Err(Error::unavailable(format!(
                "the data is being changed by other requests ({} attempts)",
                self.retries + 1
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered_grow_to_a_cap_and_stop_at_the_deadline() {
        let mut backoff = Backoff::within(Duration::from_secs(60));
        let mut caps = Vec::new();
        for _ in 0..10 {
            let cap = backoff.cap;
            let pause = backoff.next_pause().unwrap();
            assert!(pause <= cap, "{pause:?} <= {cap:?}");
            caps.push(backoff.cap);
        }
        assert_eq!(caps[0], FIRST_CAP * 2);
        assert_eq!(*caps.last().unwrap(), MAX_CAP);
        assert_eq!(backoff.retries, 10);

        let mut spent = Backoff::within(Duration::ZERO);
        assert_eq!(spent.next_pause(), None);
    }

    #[tokio::test]
    async fn past_the_deadline_a_wait_is_503() {
        let mut backoff = Backoff::within(Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(2)).await;
        let error = backoff.wait().await.unwrap_err();
        assert_eq!((error.status(), error.code()), (503, "unavailable"));
    }
}
