//! Retrying throttled model calls, as a layer over any [`Model`].
//!
//! Bedrock throttles per account and model; the answer is to wait and try
//! again, spreading clients apart with jitter so they do not retry in step.
//! This layer is the one retry policy for model calls: the Bedrock client is
//! built with the SDK's own retries off, because the SDK cannot retry an
//! error that arrives mid-stream (after the HTTP 200) and two stacked
//! policies would multiply attempts.
//!
//! Backoff is "full jitter": before attempt `n` (from 1) the layer sleeps a
//! uniformly random time in `[0, min(max_delay, base * 2^(n-1))]`.
//!
//! Text a failed attempt already streamed is not taken back; the final
//! message of the turn is authoritative (clients replace the streamed text
//! with `output.message` on `complete`).

use std::time::Duration;

use async_trait::async_trait;

use super::{ImageFormat, Model, ModelError, ModelRequest, ModelResponse, TextSink};

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_attempts: 6,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The longest pause before retry number `retry` (from 1).
    pub fn cap(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// A random pause in `[0, cap(retry)]`.
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self.cap(retry);
        cap.mul_f64(rand::random::<f64>())
    }
}

/// Retries retryable [`ModelError`]s with jittered exponential backoff.
pub struct Retry<M> {
    inner: M,
    backoff: Backoff,
}

impl<M: Model> Retry<M> {
    pub fn new(inner: M, backoff: Backoff) -> Self {
        Retry { inner, backoff }
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, ModelError>> + Send,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if e.is_retryable() && attempt < self.backoff.max_attempts => {
                    let pause = self.backoff.delay(attempt);
                    tracing::warn!(attempt, pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), error = %e, "model call failed, retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<M: Model> Model for Retry<M> {
    fn label(&self) -> String {
        self.inner.label()
    }

    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        self.run(|| self.inner.converse(req, on_text)).await
    }

    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        question: &str,
    ) -> Result<String, ModelError> {
        self.run(|| self.inner.describe_image(image, format, question))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_and_jitters_below_it() {
        let b = Backoff {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(b.cap(1), Duration::from_millis(100));
        assert_eq!(b.cap(2), Duration::from_millis(200));
        assert_eq!(b.cap(4), Duration::from_millis(800));
        assert_eq!(b.cap(5), Duration::from_secs(1));
        assert_eq!(b.cap(64), Duration::from_secs(1), "no overflow");
        let delays: Vec<_> = (0..50).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "delays are jittered"
        );
    }
}
