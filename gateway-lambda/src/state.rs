//! What every request of one gateway instance shares: the seller's terms,
//! its outside systems (facilitator, model, stores, chain) and settings.

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderMap, header};
use x402::facilitator::Facilitator;

use crate::{
    chain::Chain,
    generate::Generator,
    payer_lock::PayerLocks,
    payment::Seller,
    pricing::ImagePrices,
    store::{PaymentStore, ReservationStore, ResultStore},
};

/// Payment records are kept this long after their last change (TTL) unless
/// configured (`PAYMENT_RETENTION_DAYS`): as long as the results bucket keeps
/// the content (the CDK's `imageExpiryDays`, 30 by default), so a settled
/// payment can be redeemed for as long as its content exists.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct AppState {
    pub seller: Seller,
    pub prices: ImagePrices,
    pub facilitator: Arc<dyn Facilitator>,
    pub generator: Arc<dyn Generator>,
    pub payments: Arc<dyn PaymentStore>,
    pub reservations: Arc<dyn ReservationStore>,
    pub results: Arc<dyn ResultStore>,
    pub chain: Arc<dyn Chain>,
    pub public_url: Option<String>,
    pub lease: Duration,
    pub generation_timeout: Duration,
    /// How long payment records are kept ([`DEFAULT_RETENTION`]).
    pub retention: Duration,
    /// Blocks on top of a reverted settlement before it counts as final
    /// (only then may its payment be released).
    pub confirmations: u64,
    /// Serializes each payer's reservation changes within this instance.
    pub payer_locks: PayerLocks,
}

impl AppState {
    /// The URL a client asked for: `PUBLIC_URL` when set, else from `Host`.
    pub(crate) fn resource_url(&self, headers: &HeaderMap, route: &str) -> String {
        if let Some(base) = &self.public_url {
            return format!("{base}{route}");
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("http");
        format!("{proto}://{host}{route}")
    }
}
