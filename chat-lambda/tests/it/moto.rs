//! DynamoDB for tests: moto.
//!
//! Uses the local stack's moto when `$STACK_ENV` (default `.local/stack.env`) names one
//! (`AWS_ENDPOINT_URL`, written by `cargo xtask stack`); otherwise starts a
//! private `moto_server` on a free loopback port (from `.venv/bin`, then PATH)
//! and stops it when the test ends. Fails with a clear message if neither works.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_lambda::connections::{KEY_ATTRIBUTE, TTL_ATTRIBUTE};

const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn stack_endpoint() -> Option<String> {
    // `cargo xtask test` passes the file as STACK_ENV.
    let file = std::env::var_os("STACK_ENV")
        .map_or_else(|| workspace_root().join(".local/stack.env"), PathBuf::from);
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        let value = line.strip_prefix("AWS_ENDPOINT_URL=")?;
        Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
    })
}

async fn answers(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

impl Moto {
    pub async fn start() -> Self {
        if let Some(endpoint) = stack_endpoint()
            && answers(&endpoint).await
        {
            return Self {
                endpoint,
                child: None,
            };
        }
        let venv = workspace_root().join(".venv/bin/moto_server");
        let program = if venv.exists() {
            venv
        } else {
            PathBuf::from("moto_server")
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "moto is needed for the DynamoDB tests and could not start ({}: {e}). \
                     Run `cargo xtask stack`, or `python3 -m venv .venv && \
                     .venv/bin/pip install 'moto[server]'`.",
                    program.display()
                )
            });
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        while !answers(&moto.endpoint).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        moto
    }

    /// Creates a connections table shaped like the CDK one (fresh name per call).
    pub async fn create_connections_table(&self) -> String {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("chat-connections-{nanos}");
        let client = aws_sdk_dynamodb::Client::new(&super::sdk_config(&self.endpoint));
        client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create table in moto");
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("enable TTL in moto");
        name
    }
}
