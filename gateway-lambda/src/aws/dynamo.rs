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

impl DynamoPaymentStore {
    /// The JSON `record` attribute of item `pk` (consistent read), if any.
    async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
    ) -> Result<Option<T>, StoreError> {
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
            return Ok(None);
        };
        let json = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError(format!("item {pk} has no record")))?;
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| StoreError(format!("item {pk}: {e}")))
    }

    /// Writes item `pk` (`record`, `version`, `expiresAt`) if its version is
    /// still `expected` (`None`: if there is no item yet). `false` when the
    /// condition failed: another writer got there first.
    async fn put_record_if(
        &self,
        pk: String,
        record: String,
        version: u64,
        expires_at: u64,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk))
            .item("record", AttributeValue::S(record))
            .item("version", AttributeValue::N(version.to_string()))
            .item("expiresAt", AttributeValue::N(expires_at.to_string()));
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
}

#[async_trait]
impl PaymentStore for DynamoPaymentStore {
    async fn get(&self, key: &PaymentKey) -> Result<Option<PaymentRecord>, StoreError> {
        self.get_record(key.id()).await
    }

    async fn put_if(
        &self,
        key: &PaymentKey,
        expected: Option<u64>,
        record: &PaymentRecord,
    ) -> Result<bool, StoreError> {
        self.put_record_if(
            key.id(),
            serde_json::to_string(record).expect("records serialise"),
            record.version,
            record.expires_at,
            expected,
        )
        .await
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
        Ok(self
            .get_record(reservations_key(payer))
            .await?
            .unwrap_or_default())
    }

    async fn put_reservations_if(
        &self,
        payer: Address,
        expected: u64,
        next: &Reservations,
    ) -> Result<bool, StoreError> {
        self.put_record_if(
            reservations_key(payer),
            serde_json::to_string(next).expect("reservations serialise"),
            next.version,
            next.last_until().saturating_add(24 * 3600),
            // Version 0 is "no record yet".
            (expected != 0).then_some(expected),
        )
        .await
    }
}
