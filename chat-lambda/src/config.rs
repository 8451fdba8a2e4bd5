//! Configuration from the environment (names documented in `.env-sample`).

use std::sync::Arc;

use crate::callback::ApiGatewaySink;
use crate::connections::DynamoConnections;
use crate::handler::Handler;
use crate::runtime::AgentCoreRuntime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `CONNECTIONS_TABLE`: DynamoDB table of open connections.
    pub connections_table: String,
    /// `AGENT_RUNTIME_ARN`: the AgentCore Runtime to invoke.
    pub agent_runtime_arn: String,
    /// `AGENT_RUNTIME_QUALIFIER`: endpoint name; the default endpoint if unset.
    pub agent_runtime_qualifier: Option<String>,
    /// `WEBSOCKET_CALLBACK_URL`: overrides `https://{domain}/{stage}`.
    pub callback_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("missing required environment variable {0}")]
pub struct MissingVar(&'static str);

impl Config {
    pub fn from_env() -> Result<Self, MissingVar> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVar> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let required = |k: &'static str| get(k).ok_or(MissingVar(k));
        Ok(Self {
            connections_table: required("CONNECTIONS_TABLE")?,
            agent_runtime_arn: required("AGENT_RUNTIME_ARN")?,
            agent_runtime_qualifier: get("AGENT_RUNTIME_QUALIFIER"),
            callback_url: get("WEBSOCKET_CALLBACK_URL"),
        })
    }

    /// The handler wired to the real AWS clients built from `sdk`.
    pub fn handler(&self, sdk: &aws_config::SdkConfig) -> Handler {
        Handler::new(
            Arc::new(DynamoConnections::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &self.connections_table,
            )),
            Arc::new(ApiGatewaySink::new(sdk.clone())),
            Arc::new(AgentCoreRuntime::new(
                aws_sdk_bedrockagentcore::Client::new(sdk),
                &self.agent_runtime_arn,
                self.agent_runtime_qualifier.clone(),
            )),
            self.callback_url.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_required_and_optional_vars() {
        let env = |k: &str| match k {
            "CONNECTIONS_TABLE" => Some("conns".to_owned()),
            "AGENT_RUNTIME_ARN" => Some("arn:aws:bedrock-agentcore:r:1:runtime/a".to_owned()),
            "AGENT_RUNTIME_QUALIFIER" => Some(" ".to_owned()),
            _ => None,
        };
        let c = Config::from_lookup(env).unwrap();
        assert_eq!(c.connections_table, "conns");
        assert_eq!(c.agent_runtime_qualifier, None);
        assert_eq!(c.callback_url, None);
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable CONNECTIONS_TABLE"
        );
    }
}
