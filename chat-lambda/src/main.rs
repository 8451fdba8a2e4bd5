//! Lambda entry point: configuration, AWS clients, then the runtime loop.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    plumbing::init_json_logs(plumbing::LogSink::CloudWatch);
    let config = <chat_lambda::config::Config as plumbing::env::FromEnv>::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let handler = config.handler(&sdk);
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            handler
                .handle(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
