//! Retrying throttled model calls, as a layer over any [`Model`].
//!
//! Bedrock throttles per account and model; the answer is to wait and try
//! again, spreading clients apart with jitter so they do not retry in step.
//! This layer is the one retry policy for model calls: the Bedrock client is
//! built with the SDK's own retries off, because the SDK cannot retry an
//! error that arrives mid-stream (after the HTTP 200) and two stacked
//! policies would multiply attempts.
//!
//! Backoff is exponential with jitter (`backon`): before retry `n` (from 1)
//! the layer sleeps `min(max_delay, base * 2^(n-1))` plus a random part of
//! up to as much again.
//!
//! Text a failed attempt already streamed is not taken back; the final
//! message of the turn is authoritative (clients replace the streamed text
//! with `output.message` on `complete`).

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable as _};

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
    /// The pauses between attempts, as `backon` builds them.
    pub fn policy(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
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

    async fn run<T, F, Fut>(&self, call: F) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, ModelError>> + Send,
    {
        call.retry(self.backoff.policy())
            .sleep(tokio::time::sleep)
            .when(ModelError::is_retryable)
            .notify(|e, pause| {
                tracing::warn!(
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "model call failed, retrying"
                );
            })
            .await
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

    use backon::BackoffBuilder as _;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_jitter_and_stops() {
        let b = Backoff {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let runs: Vec<Vec<Duration>> = (0..20).map(|_| b.policy().build().collect()).collect();
        for delays in &runs {
            assert_eq!(delays.len(), 9, "max_attempts counts the first call");
            for (i, d) in delays.iter().enumerate() {
                let cap = Duration::from_millis(100 * (1 << i.min(4))).min(Duration::from_secs(1));
                assert!(*d >= cap && *d <= cap * 2, "retry {i}: {d:?} vs {cap:?}");
            }
        }
        assert!(runs.iter().any(|r| r != &runs[0]), "delays are jittered");
    }
}
