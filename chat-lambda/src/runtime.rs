//! The agent: Bedrock AgentCore `InvokeAgentRuntime`, streamed.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A streamed agent response.
pub struct AgentResponse {
    /// `text/event-stream` for a streamed run, `application/json` otherwise.
    pub content_type: String,
    pub body: BoxStream<'static, Result<Bytes, InvokeError>>,
}

impl std::fmt::Debug for AgentResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentResponse")
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Why the agent could not be invoked. `Display` is for logs: the service's
/// own message may name ARNs, roles and account ids, so clients get
/// [`InvokeError::client_text`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The service answered with an error (`code` is its error type).
    #[error("{code}: {message}")]
    Service { code: String, message: String },
    /// Network, timeout, or the stream broke mid-way.
    #[error("could not reach the agent: {0}")]
    Transport(String),
}

impl InvokeError {
    /// What happened, in the chat user's terms.
    pub fn client_text(&self) -> &'static str {
        match self {
            Self::Service { code, .. } => match code.as_str() {
                "ThrottlingException" | "ServiceQuotaExceededException" => {
                    "the agent is busy; try again in a moment"
                }
                // The container answered 4xx/5xx or broke.
                "RuntimeClientError" => "the agent failed while answering",
                "ServiceUnavailableException" | "InternalServerException" => {
                    "the agent service is unavailable; try again later"
                }
                // Access, validation, missing runtime: our deployment is wrong.
                _ => "the chat service could not invoke the agent",
            },
            Self::Transport(_) => "the agent could not be reached",
        }
    }
}

#[async_trait]
pub trait AgentRuntime: Send + Sync {
    /// Calls the agent with `payload` (JSON) in runtime session
    /// `runtime_session_id` on behalf of `runtime_user_id` (AgentCore passes
    /// it to the container as `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`;
    /// the caller needs `bedrock-agentcore:InvokeAgentRuntimeForUser`).
    async fn invoke(
        &self,
        runtime_session_id: &str,
        runtime_user_id: &str,
        payload: Vec<u8>,
    ) -> Result<AgentResponse, InvokeError>;
}

/// AWS implementation.
#[derive(Debug, Clone)]
pub struct AgentCoreRuntime {
    client: aws_sdk_bedrockagentcore::Client,
    runtime_arn: String,
    qualifier: Option<String>,
}

impl AgentCoreRuntime {
    pub fn new(
        client: aws_sdk_bedrockagentcore::Client,
        runtime_arn: impl Into<String>,
        qualifier: Option<String>,
    ) -> Self {
        Self {
            client,
            runtime_arn: runtime_arn.into(),
            qualifier,
        }
    }
}

#[async_trait]
impl AgentRuntime for AgentCoreRuntime {
    async fn invoke(
        &self,
        runtime_session_id: &str,
        runtime_user_id: &str,
        payload: Vec<u8>,
    ) -> Result<AgentResponse, InvokeError> {
        use aws_sdk_bedrockagentcore::error::{DisplayErrorContext, ProvideErrorMetadata};
        let out = self
            .client
            .invoke_agent_runtime()
            .agent_runtime_arn(&self.runtime_arn)
            .set_qualifier(self.qualifier.clone())
            .runtime_session_id(runtime_session_id)
            .runtime_user_id(runtime_user_id)
            // The SDK would default to application/octet-stream.
            .content_type("application/json")
            .accept("text/event-stream")
            .payload(aws_sdk_bedrockagentcore::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(service) => InvokeError::Service {
                    code: service.code().unwrap_or("AgentCoreError").to_owned(),
                    message: service.message().unwrap_or("no message").to_owned(),
                },
                None => InvokeError::Transport(DisplayErrorContext(e).to_string()),
            })?;
        let body = futures::stream::unfold(out.response, |mut stream| async move {
            let item = stream.next().await?;
            Some((
                item.map_err(|e| InvokeError::Transport(e.to_string())),
                stream,
            ))
        });
        Ok(AgentResponse {
            content_type: out.content_type,
            body: Box::pin(body),
        })
    }
}
