//! The stack's moto as the AWS SDK sees it, and the resources tests make on
//! it: one place for the endpoint override and the CDK table schema.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use crate::Stack;

/// A name no other test of this run (or an earlier run on the same moto)
/// has used: `{prefix}-{pid}-{nanos}-{n}`.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Stack {
    /// SDK configuration for the stack's moto (region, test credentials,
    /// endpoint override). S3 clients built from it need path-style URLs.
    pub async fn aws_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.aws_region.clone()))
            .credentials_provider(aws_credential_types::Credentials::new(
                self.aws_access_key_id.clone(),
                self.aws_secret_access_key.clone(),
                None,
                None,
                "stack",
            ))
            .endpoint_url(&self.aws_endpoint_url)
            .load()
            .await
    }

    /// A new table on moto with the schema every table of the CDK app has
    /// (partition key `pk`, a string; on demand); returns its name.
    pub async fn create_pk_table(&self, prefix: &str) -> Result<String> {
        let name = unique(prefix);
        aws_sdk_dynamodb::Client::new(&self.aws_config().await)
            .create_table()
            .table_name(&name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .with_context(|| format!("creating table {name} on moto"))?;
        Ok(name)
    }

    /// A new S3 bucket on moto; returns its name.
    pub async fn create_bucket(&self, prefix: &str) -> Result<String> {
        let name = unique(prefix);
        let conf = self.aws_config().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .with_context(|| format!("creating bucket {name} on moto"))?;
        Ok(name)
    }
}
