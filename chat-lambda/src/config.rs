//! Configuration from the environment (names documented in `.env-sample`).

use std::sync::Arc;

use plumbing::env::{Env, FromEnv, Problems};

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

impl FromEnv for Config {
    fn read(mut env: Env<'_>) -> Result<Self, Problems> {
        let config = Self {
            connections_table: env.required("CONNECTIONS_TABLE", "the table of open connections"),
            agent_runtime_arn: env.required("AGENT_RUNTIME_ARN", "the runtime to invoke"),
            agent_runtime_qualifier: env.opt("AGENT_RUNTIME_QUALIFIER"),
            callback_url: env.opt("WEBSOCKET_CALLBACK_URL"),
        };
        env.finish().map(|()| config)
    }
}

impl Config {
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
            err.0,
            [
                "CONNECTIONS_TABLE is required (the table of open connections)",
                "AGENT_RUNTIME_ARN is required (the runtime to invoke)",
            ]
        );
    }
}
