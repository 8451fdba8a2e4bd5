//! Messages to the browser: the API Gateway Management API (`PostToConnection`).
//!
//! The management endpoint is `https://{domainName}/{stage}` of the WebSocket
//! API the request came through (or `WEBSOCKET_CALLBACK_URL` when a custom
//! domain or a local stand-in sits in front).

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// 410: the client has disconnected. Not a failure: stop sending.
    #[error("connection is gone")]
    Gone,
    #[error("PostToConnection failed: {0}")]
    Other(String),
}

#[async_trait]
pub trait ClientSink: Send + Sync {
    /// Sends one WebSocket message to `connection_id` via `endpoint`.
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        data: Vec<u8>,
    ) -> Result<(), PostError>;
}

/// AWS implementation. Clients are per endpoint (the endpoint is part of the
/// request), all built from one shared SDK config.
#[derive(Debug, Clone)]
pub struct ApiGatewaySink {
    config: aws_config::SdkConfig,
}

impl ApiGatewaySink {
    pub fn new(config: aws_config::SdkConfig) -> Self {
        Self { config }
    }

    fn client(&self, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(&self.config)
            .endpoint_url(endpoint)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(conf)
    }
}

#[async_trait]
impl ClientSink for ApiGatewaySink {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        data: Vec<u8>,
    ) -> Result<(), PostError> {
        let result = self
            .client(endpoint)
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let gone = e.as_service_error().is_some_and(|s| s.is_gone_exception())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Err(PostError::Gone)
                } else {
                    Err(PostError::Other(
                        aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
                    ))
                }
            }
        }
    }
}
