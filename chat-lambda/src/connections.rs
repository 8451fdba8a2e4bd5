//! The connections table (DynamoDB): which WebSocket connections are open.
//!
//! Item: `connectionId` (partition key), `userId` (the user the `$connect`
//! authorizer verified), `connectedAt` and `expiresAt` (epoch seconds). `expiresAt` is the table's TTL attribute, so an item whose
//! `$disconnect` never ran (API Gateway does not guarantee it) still goes away.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

/// API Gateway closes a WebSocket after at most 2 hours; keep rows a bit longer.
pub const CONNECTION_TTL_SECONDS: i64 = 3 * 60 * 60;
/// Partition key attribute.
pub const KEY_ATTRIBUTE: &str = "connectionId";
/// TTL attribute (must match the table's `timeToLiveAttribute` in cdk/).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// The connection's signed-in user.
pub const USER_ATTRIBUTE: &str = "userId";

#[derive(Debug, thiserror::Error)]
#[error("connections table: {0}")]
pub struct ConnectionStoreError(String);

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records an open connection of `user_id` (`$connect`), `now` in epoch seconds.
    async fn put(
        &self,
        connection_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), ConnectionStoreError>;
    /// The user recorded for an open connection.
    async fn user(&self, connection_id: &str) -> Result<Option<String>, ConnectionStoreError>;
    /// Forgets a connection (`$disconnect`); deleting a missing row is fine.
    async fn delete(&self, connection_id: &str) -> Result<(), ConnectionStoreError>;
}

/// DynamoDB implementation.
#[derive(Debug, Clone)]
pub struct DynamoConnections {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConnections {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    async fn put(
        &self,
        connection_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), ConnectionStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(connection_id.to_owned()))
            .item(USER_ATTRIBUTE, AttributeValue::S(user_id.to_owned()))
            .item("connectedAt", AttributeValue::N(now.to_string()))
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N((now + CONNECTION_TTL_SECONDS).to_string()),
            )
            .send()
            .await
            .map_err(|e| {
                ConnectionStoreError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }

    async fn user(&self, connection_id: &str) -> Result<Option<String>, ConnectionStoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(connection_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                ConnectionStoreError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?
            .item;
        Ok(item.and_then(|mut i| match i.remove(USER_ATTRIBUTE) {
            Some(AttributeValue::S(user)) => Some(user),
            _ => None,
        }))
    }

    async fn delete(&self, connection_id: &str) -> Result<(), ConnectionStoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(|e| {
                ConnectionStoreError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }
}
