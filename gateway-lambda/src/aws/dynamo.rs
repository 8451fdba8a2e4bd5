//! The payment store on DynamoDB: one item per payment, shared by every
//! Lambda instance.
//!
//! Table schema (the CDK gateway stack creates it): partition key `pk` (S) =
//! `0x<payer>-0x<nonce>`; `record` (S) the JSON [`PaymentRecord`]; `version`
//! (N) the compare-and-set token; `expiresAt` (N) the TTL attribute. Every
//! transition is one conditional write: `attribute_not_exists(pk)` for a
//! first claim, `version = :v` afterwards. Reads are strongly consistent.
//!
//! The same table holds each payer's in-flight reservations
//! ([`crate::reservation`]) as one item, `pk` = `reservations-0x<payer>`
//! (payment keys start with `0x`, so the two never meet), `record` the JSON
//! [`Reservations`], changed by the same conditional writes on `version`;
//! its `expiresAt` is a day after the latest entry lapses.

use async_trait::async_trait;
use aws_sdk_dynamodb::{Client, error::ProvideErrorMetadata, types::AttributeValue};

use alloy::primitives::Address;

use crate::{
    reservation::Reservations,
    store::{PaymentKey, PaymentRecord, PaymentStore, ReservationStore, StoreError},
};

pub struct DynamoPaymentStore {
    client: Client,
    table: String,
}

impl DynamoPaymentStore {
    pub fn new(client: Client, table: String) -> Self {
        DynamoPaymentStore { client, table }
    }
}

fn err(e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> StoreError {
    StoreError(format!(
        "DynamoDB {}: {}",
        e.code().unwrap_or("error"),
        e.message().map_or_else(|| e.to_string(), str::to_owned)
    ))
}

fn is_condition_failure(e: &impl ProvideErrorMetadata) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl PaymentStore for DynamoPaymentStore {
    async fn get(&self, key: &PaymentKey) -> Result<Option<PaymentRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.id()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let json = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError(format!("item {} has no record", key.id())))?;
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| StoreError(format!("item {}: {e}", key.id())))
    }

    async fn put_if(
        &self,
        key: &PaymentKey,
        expected: Option<u64>,
        record: &PaymentRecord,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.id()))
            .item(
                "record",
                AttributeValue::S(serde_json::to_string(record).expect("records serialise")),
            )
            .item("version", AttributeValue::N(record.version.to_string()))
            .item(
                "expiresAt",
                AttributeValue::N(record.expires_at.to_string()),
            );
        put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if is_condition_failure(&e) {
                    Ok(false)
                } else {
                    Err(err(&e))
                }
            }
        }
    }

    async fn delete_if(&self, key: &PaymentKey, expected: u64) -> Result<bool, StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.id()))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if is_condition_failure(&e) {
                    Ok(false)
                } else {
                    Err(err(&e))
                }
            }
        }
    }
}

fn reservations_key(payer: Address) -> String {
    format!("reservations-{payer:#x}")
}

#[async_trait]
impl ReservationStore for DynamoPaymentStore {
    async fn reservations(&self, payer: Address) -> Result<Reservations, StoreError> {
        let pk = reservations_key(payer);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| err(&e.into_service_error()))?;
        let Some(item) = out.item() else {
            return Ok(Reservations::default());
        };
        let json = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError(format!("item {pk} has no record")))?;
        serde_json::from_str(json).map_err(|e| StoreError(format!("item {pk}: {e}")))
    }

    async fn put_reservations_if(
        &self,
        payer: Address,
        expected: u64,
        next: &Reservations,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(reservations_key(payer)))
            .item(
                "record",
                AttributeValue::S(serde_json::to_string(next).expect("reservations serialise")),
            )
            .item("version", AttributeValue::N(next.version.to_string()))
            .item(
                "expiresAt",
                AttributeValue::N(next.last_until().saturating_add(24 * 3600).to_string()),
            );
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if is_condition_failure(&e) {
                    Ok(false)
                } else {
                    Err(err(&e))
                }
            }
        }
    }
}
