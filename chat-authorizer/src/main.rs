//! Lambda entry point: configuration, then the runtime loop.

use chat_authorizer::ConnectRequest;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    plumbing::init_json_logs(plumbing::LogSink::CloudWatch);
    let config = <chat_authorizer::config::Config as plumbing::env::FromEnv>::from_env()?;
    let authorizer = config.authorizer()?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ConnectRequest>| async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Ok::<_, lambda_runtime::Error>(authorizer.authorize(&event.payload, now).await)
        },
    ))
    .await
}
