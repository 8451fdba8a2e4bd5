//! The state one turn's tool calls share, and the two ways out of it: the
//! session's ledger ([`LedgerLog`], durable, written before each next step)
//! and what the user is shown as it happens ([`ToolEvent`]s).

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use tokio::sync::Mutex;
use x402::Usdc;

use super::ToolError;
use crate::{
    ledger::{LedgerEntry, Refusal, StoredImage},
    progress::{PaymentReceipt, QuoteInfo, RefusalInfo, ToolEvent},
};

/// Where the session's ledger is kept: the agent's session store (AgentCore
/// Memory in AWS, a local store otherwise), bound to one session.
#[async_trait]
pub trait LedgerLog: Send + Sync {
    /// Appends one entry durably; a retry with the same `idempotency_key`
    /// never stores it twice.
    async fn append(
        &self,
        entry: &LedgerEntry,
        idempotency_key: &str,
    ) -> Result<(), LedgerWriteError>;
}

/// The ledger could not be written: the step it records was not taken.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LedgerWriteError(pub String);

/// Receives the tools' events as they happen. Never blocks: the agent queues
/// them for its client; a client that left does not stop the tools.
pub type EventSink = Arc<dyn Fn(ToolEvent) + Send + Sync>;

/// The state of one turn that its tools share: the session's ledger (loaded
/// at the start of the turn, appended to as tools run) and what the turn
/// produced. The ledger mutex also serialises the money path of parallel
/// tool calls, so two purchases in one turn never both pass one budget check.
pub struct TurnContext {
    pub actor_id: String,
    pub session_id: String,
    pub turn_id: String,
    /// This turn's session budget (caller's, else configured).
    pub budget: Usdc,
    log: Arc<dyn LedgerLog>,
    events: EventSink,
    pub(super) ledger: Mutex<Vec<LedgerEntry>>,
    produced: std::sync::Mutex<Produced>,
}

/// Images and payments of this turn, for the response.
#[derive(Clone, Debug, Default)]
pub struct Produced {
    pub images: BTreeMap<String, String>,
    pub payments: Vec<PaymentReceipt>,
    pub quotes: Vec<QuoteInfo>,
    pub refusals: Vec<RefusalInfo>,
}

impl TurnContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actor_id: String,
        session_id: String,
        turn_id: String,
        budget: Usdc,
        log: Arc<dyn LedgerLog>,
        events: EventSink,
        ledger: Vec<LedgerEntry>,
    ) -> Self {
        TurnContext {
            actor_id,
            session_id,
            turn_id,
            budget,
            log,
            events,
            ledger: Mutex::new(ledger),
            produced: std::sync::Mutex::new(Produced::default()),
        }
    }

    pub fn produced(&self) -> Produced {
        self.produced.lock().expect("lock").clone()
    }

    /// Appends an entry to the session store, then to the in-memory ledger.
    /// The store write comes first: a step is taken only once it is durable.
    pub(super) async fn record(
        &self,
        ledger: &mut Vec<LedgerEntry>,
        entry: LedgerEntry,
    ) -> Result<(), ToolError> {
        self.log
            .append(&entry, &entry.idempotency_key())
            .await
            .map_err(ToolError::Store)?;
        ledger.push(entry);
        Ok(())
    }

    fn emit(&self, e: ToolEvent) {
        (self.events)(e);
    }

    /// Tells the client about a payment just recorded (and keeps it for the
    /// output).
    pub(super) fn show_payment(&self, receipt: PaymentReceipt) {
        self.produced
            .lock()
            .expect("lock")
            .payments
            .push(receipt.clone());
        self.emit(ToolEvent::Payment { receipt });
    }

    /// Tells the client about a quote (and keeps it for the output).
    pub(super) fn show_quote(&self, quote: QuoteInfo) {
        self.produced
            .lock()
            .expect("lock")
            .quotes
            .push(quote.clone());
        self.emit(ToolEvent::Quote(quote));
    }

    /// Tells the client a payment was refused, and returns the refusal for
    /// the model.
    pub async fn refused(&self, request_id: &str, refusal: Refusal) -> ToolError {
        let (amount, limit) = refusal.amount_and_limit();
        let info = RefusalInfo {
            request_id: request_id.into(),
            rule: refusal.rule().into(),
            amount,
            limit,
            message: refusal.to_string(),
        };
        tracing::info!(request_id, rule = %info.rule, "payment refused");
        self.produced
            .lock()
            .expect("lock")
            .refusals
            .push(info.clone());
        self.emit(ToolEvent::Refusal(info));
        ToolError::Refused(refusal)
    }

    pub(super) fn show_image(&self, image: &StoredImage) {
        self.produced
            .lock()
            .expect("lock")
            .images
            .insert(image.image_id.clone(), image.url.clone());
        self.emit(ToolEvent::Image {
            id: image.image_id.clone(),
            url: image.url.clone(),
        });
    }
}
