//! The gateway's model under chaos, and the cheating buyers' nonce burns
//! it arranges.

use super::*;

/// The gateway's model, failing where the plan says; for a cheating
/// buyer's prompt it first burns that buyer's nonce on chain (verified, not
/// yet settled: the moment a cheat would pick), and counts its generations.
pub(crate) struct FlakyModel {
    pub(crate) chaos: Arc<Chaos>,
    pub(crate) cheats: Arc<Cheats>,
}

/// What the cheating buyers arranged and what happened to them.
#[derive(Default)]
pub(crate) struct Cheats {
    pub(crate) stack: Option<testkit::Stack>,
    /// Adversary index -> the payer and nonce to burn, and how.
    pub(crate) burns: Mutex<HashMap<u64, (PrivateKeySigner, B256, Burn)>>,
    /// Burns done: adversary, burn transaction or why it failed.
    pub(crate) burned: Mutex<Vec<(u64, Result<B256, String>)>>,
    /// Adversary index -> images generated for it.
    pub(crate) generations: Mutex<HashMap<u64, u32>>,
}

#[async_trait]
impl Generator for FlakyModel {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        let adversary = request_index(&job.prompt, ADV_MARK);
        if let Some(k) = adversary {
            let burn = self.cheats.burns.lock().unwrap().remove(&k);
            if let (Some((key, nonce, how)), Some(stack)) = (burn, &self.cheats.stack) {
                let r = adversary::burn(stack, &key, nonce, how)
                    .await
                    .map_err(|e| format!("{e:#}"));
                self.cheats.burned.lock().unwrap().push((k, r));
            }
        }
        let index = adversary
            .map(|k| ADV_BASE + k)
            .or_else(|| request_index(&job.prompt, PROMPT_MARK));
        match index {
            Some(i) => {
                if self.chaos.next(i, What::Model) == Some(Kind::ModelFailure) {
                    return Err(GenerationError::Unavailable(
                        "injected model failure".into(),
                    ));
                }
            }
            None => self
                .chaos
                .unattributed
                .lock()
                .unwrap()
                .push(format!("Model: {}", job.prompt)),
        }
        let image = LocalGenerator.image(job).await;
        if let Some(k) = adversary
            && image.is_ok()
        {
            *self
                .cheats
                .generations
                .lock()
                .unwrap()
                .entry(k)
                .or_default() += 1;
        }
        image
    }
    async fn text(&self, p: &str) -> Result<String, GenerationError> {
        LocalGenerator.text(p).await
    }
    async fn count_input_tokens(&self, p: &str) -> Result<u64, GenerationError> {
        LocalGenerator.count_input_tokens(p).await
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}
