//! The web chat page, served by the agent itself on a local run.
//!
//! Not part of the AgentCore contract, so it is off unless `AGENT_WEB_UI=1`
//! (the local stack and `cargo xtask demo --web` turn it on). Routes:
//!
//! - `GET /`, `GET /assets/app.js`, `GET /assets/aws.js`, `GET /assets/style.css`:
//!   the page, plain HTML/CSS/JS embedded in the binary (`agent/web/`), no
//!   build step. It talks to this agent's `/ws` (same origin) and reads
//!   `/api/status`. (`aws.js` is the page's AWS mode, for the copy the CDK
//!   app deploys with a `config.json`; here `/config.json` is a 404, so it
//!   stays idle.)
//! - `GET /api/status?session_id=..[&budget_usdc=..]`: what the page's budget
//!   meter and wallet line show: the session's committed spend (every
//!   prepared payment, settled or not: what the budget counts), the budget
//!   (the caller's when given, else the configured one), what remains, the
//!   auto-approve limit, and the wallet's USDC balance read from the chain.
//!   Read-only; the page never sends money settings anywhere but in its own
//!   prompts' `session_budget_usdc`, which the server checks as always.
//!
//! The page is served with a strict Content-Security-Policy: scripts and
//! styles from this origin only, no inline code, no framing; images from this
//! origin, `https:` (presigned S3 URLs on AWS) and loopback `http:` (the local
//! stack's presigned moto S3 URLs).

use std::sync::Arc;

use async_trait::async_trait;
use axum::{
    Json, Router,
    extract::Query,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use x402::Usdc;

use tools::ledger::{self, LedgerEntry};

use crate::{
    runtime_headers::USER_ID_HEADER,
    session::{Record, ids::is_valid_client_id},
    turn::TurnDeps,
};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const AWS_JS: &str = include_str!("../web/aws.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// The page's Content-Security-Policy (see the module docs).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data: https: http://127.0.0.1:* http://localhost:*; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the budget meter and the wallet line show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    pub session_id: String,
    pub budget: Usdc,
    pub spent: Usdc,
    pub remaining: Usdc,
    pub auto_approve_max: Usdc,
    /// `None` when the chain could not be read (shown as unknown).
    pub wallet: Option<WalletLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletLine {
    pub address: String,
    pub network: String,
    pub usdc: Usdc,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error("invalid session id: use 1-256 letters, digits, '-', '_', '.' or ':'")]
    InvalidSessionId,
    #[error("invalid user id header")]
    InvalidUserId,
    #[error("invalid budget_usdc: {0}")]
    InvalidBudget(String),
    #[error("the session store is unavailable; try again")]
    Unavailable,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match self {
            WebError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// Reads a session's money state; implemented over the real tool loop's
/// dependencies ([`TurnDeps`]).
#[async_trait]
pub trait SessionView: Send + Sync {
    async fn status(
        &self,
        actor_id: &str,
        session_id: &str,
        budget: Option<Usdc>,
    ) -> Result<SessionStatus, WebError>;
}

#[async_trait]
impl SessionView for TurnDeps {
    async fn status(
        &self,
        actor_id: &str,
        session_id: &str,
        budget: Option<Usdc>,
    ) -> Result<SessionStatus, WebError> {
        let records = self.store.load(actor_id, session_id).await.map_err(|e| {
            tracing::warn!(error = %e, "status: session store");
            WebError::Unavailable
        })?;
        let entries: Vec<LedgerEntry> = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Ledger { entry } => ledger::decode(entry).ok(),
                Record::Message { .. } => None,
            })
            .collect();
        let budget = budget.unwrap_or(self.settings.default_budget);
        let spent = ledger::committed_spend(&entries);
        let wallet = match self.tools.wallet.usdc_balance().await {
            Ok(usdc) => Some(WalletLine {
                address: self.tools.wallet.address().to_checksum(None),
                network: self.tools.rules.network.v1_name().to_owned(),
                usdc,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "status: wallet balance");
                None
            }
        };
        Ok(SessionStatus {
            session_id: session_id.to_owned(),
            budget,
            spent,
            remaining: budget.saturating_sub(spent),
            auto_approve_max: self.tools.rules.auto_approve_max,
            wallet,
        })
    }
}

/// What the web routes need.
#[derive(Clone)]
pub struct WebUi {
    view: Arc<dyn SessionView>,
    default_actor_id: String,
    max_session_budget: Usdc,
}

impl WebUi {
    pub fn new(
        view: Arc<dyn SessionView>,
        default_actor_id: String,
        max_session_budget: Usdc,
    ) -> Self {
        WebUi {
            view,
            default_actor_id,
            max_session_budget,
        }
    }
}

/// The page's routes, to merge into the service's router.
pub fn routes<S: Clone + Send + Sync + 'static>(ui: WebUi) -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/aws.js",
            get(|| async { page(AWS_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/api/status",
            get(move |headers: HeaderMap, q: Query<StatusQuery>| status(ui.clone(), headers, q)),
        )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    session_id: String,
    #[serde(default)]
    budget_usdc: Option<String>,
}

async fn status(
    ui: WebUi,
    headers: HeaderMap,
    Query(q): Query<StatusQuery>,
) -> Result<Json<SessionStatus>, WebError> {
    if !is_valid_client_id(&q.session_id) {
        return Err(WebError::InvalidSessionId);
    }
    let actor = match headers.get(USER_ID_HEADER).map(|v| v.to_str()) {
        None => ui.default_actor_id.clone(),
        Some(Ok(s)) if is_valid_client_id(s.trim()) => s.trim().to_owned(),
        Some(_) => return Err(WebError::InvalidUserId),
    };
    let budget = parse_budget(q.budget_usdc.as_deref(), ui.max_session_budget)?;
    let mut resp = Json(ui.view.status(&actor, &q.session_id, budget).await?);
    resp.0.session_id = q.session_id;
    Ok(resp)
}

/// Empty means "the configured budget"; otherwise exact decimal USDC within
/// the same maximum the invocation payload allows.
fn parse_budget(raw: Option<&str>, max: Usdc) -> Result<Option<Usdc>, WebError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let amount: Usdc = raw
        .parse()
        .map_err(|e| WebError::InvalidBudget(format!("{e}")))?;
    if amount > max {
        return Err(WebError::InvalidBudget(format!(
            "{amount} is above the maximum of {max}"
        )));
    }
    Ok(Some(amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_exact_and_capped() {
        let max = Usdc::from_atomic(5_000_000);
        assert_eq!(parse_budget(None, max).unwrap(), None);
        assert_eq!(parse_budget(Some(" "), max).unwrap(), None);
        assert_eq!(
            parse_budget(Some("0.01"), max).unwrap(),
            Some(Usdc::from_atomic(10_000))
        );
        for bad in ["-1", "abc", "5.000001", "0.0000001"] {
            assert!(parse_budget(Some(bad), max).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_code() {
        // Everything the page runs is in the files the CSP allows.
        assert!(!INDEX_HTML.contains("<script>"), "no inline script");
        assert!(!INDEX_HTML.contains("style="), "no inline style");
        assert!(INDEX_HTML.contains(r#"src="/assets/app.js""#));
        assert!(INDEX_HTML.contains(r#"src="/assets/aws.js""#));
        assert!(INDEX_HTML.contains(r#"href="/assets/style.css""#));
        for js in [APP_JS, AWS_JS] {
            assert!(!js.contains("innerHTML"), "text is never parsed as HTML");
        }
    }
}
