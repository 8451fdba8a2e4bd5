//! What a refused request tells its client, and what is only logged.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// What clients see when a request is refused or fails. Messages are
/// stable and never include internal causes (those are logged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("Invalid JSON: the body must be a JSON object")]
    InvalidJson,
    #[error(
        "a prompt is required: {{\"input\": {{\"prompt\": \"...\"}}}} or {{\"prompt\": \"...\"}}"
    )]
    MissingPrompt,
    #[error("the prompt is longer than {0} characters")]
    PromptTooLong(usize),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("invalid session id: use 1-256 letters, digits, '-', '_', '.' or ':'")]
    InvalidSessionId,
    #[error("invalid user id header: use 1-256 letters, digits, '-', '_', '.' or ':'")]
    InvalidUserId,
    #[error("invalid session_budget_usdc: {0}")]
    InvalidBudget(String),
    #[error(
        "invalid approve: expected {{\"request_id\": \"...\", \"approved\": true|false}} ({0})"
    )]
    InvalidApproval(String),
    #[error("the body must be JSON: send Content-Type: application/json")]
    NotJson,
    #[error(
        "requests from the web origin {0:?} are not allowed (AGENT_ALLOWED_ORIGINS lists the allowed ones)"
    )]
    ForbiddenOrigin(String),
    #[error("this session id belongs to another user: start a new session")]
    OtherUsersSession,
    #[error("not found")]
    NotFound,
    #[error("the agent is temporarily unable to take requests")]
    Unavailable,
    #[error("the agent could not complete this request (request id {0})")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::PromptTooLong(_) | ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ForbiddenOrigin(_) | ApiError::OtherUsersSession => StatusCode::FORBIDDEN,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// With the request id the logs use for it.
    pub(super) fn with_id(self, request_id: &str) -> Rejected {
        Rejected {
            error: self,
            request_id: request_id.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.with_id(&uuid::Uuid::new_v4().to_string())
            .into_response()
    }
}

/// A refused request: `{"error": "...", "request_id": "..."}`.
#[derive(Debug)]
pub struct Rejected {
    pub error: ApiError,
    pub request_id: String,
}

impl Rejected {
    pub(super) fn json(&self) -> Value {
        json!({"error": self.error.to_string(), "request_id": self.request_id})
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        (self.error.status(), Json(self.json())).into_response()
    }
}
