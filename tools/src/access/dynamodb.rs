//! The [`AccessStore`] on DynamoDB, shared by every runtime microVM.
//!
//! Table (`AGENT_STATE_TABLE`): partition key `pk` (S), no sort key, TTL
//! attribute `expiresAt` (N). Items:
//!
//! | `pk` | attributes | written by |
//! |---|---|---|
//! | `session#<session id>` | `owner` (S) | `claim_session`: `attribute_not_exists(pk) OR owner = :user` |
//! | `user#<user>#<day>` | `spent` (N, micro-USDC) | `reserve` / `release` |
//! | `wallet#<0x address>#<day>` | `spent` (N) | `reserve` / `release` |
//! | `res#<user>#<request id>` | `amount` (N), `day` (S) | `reserve` / `release` |
//!
//! A reservation is one `TransactWriteItems`: insert the reservation item
//! (`attribute_not_exists(pk)`: a retry reserves nothing more) and raise both
//! counters, each under `attribute_not_exists(spent) OR spent <= :max_prior`
//! where `max_prior = cap - amount` ([`crate::policy::caps::max_prior`];
//! conditions cannot add). DynamoDB applies all three or none, so two
//! sessions racing for the last of a cap cannot both pass. A release deletes
//! the reservation (`attribute_exists(pk)`) and lowers both counters in one
//! transaction. '#' never occurs in a valid id, so keys cannot collide.

use crate::policy::caps::{CapRefusal, Committed, DailyCaps, check_caps, max_prior};
use alloy::primitives::Address;
use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    error::ProvideErrorMetadata,
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Delete, Put, TransactWriteItem, Update},
};
use x402::Usdc;

use super::{AccessError, AccessStore, Claim, Reservation};

/// Counters and reservations are kept for a week after their day (TTL).
const KEEP_SECONDS: u64 = 8 * 86_400;
/// Attempts when DynamoDB cancels a transaction for a conflicting one.
const CONFLICT_ATTEMPTS: usize = 8;

pub struct DynamoAccessStore {
    client: Client,
    table: String,
}

fn unavailable(e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> AccessError {
    AccessError::Unavailable(format!(
        "DynamoDB {}: {}",
        e.code().unwrap_or("error"),
        e.message().map_or_else(|| e.to_string(), str::to_owned)
    ))
}

fn built<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, AccessError> {
    r.map_err(|e| AccessError::Unavailable(format!("DynamoDB request: {e}")))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn user_pk(user: &str, day: &str) -> String {
    format!("user#{user}#{day}")
}

fn wallet_pk(wallet: Address, day: &str) -> String {
    format!("wallet#{wallet:#x}#{day}")
}

fn reservation_pk(r: &Reservation) -> String {
    format!("res#{}", r.id.replace('\n', "#"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which items of a cancelled transaction failed their condition; `None`
/// when it was cancelled for a conflicting transaction (retry).
fn failed_conditions(e: &TransactWriteItemsError) -> Option<Vec<bool>> {
    let TransactWriteItemsError::TransactionCanceledException(c) = e else {
        return None;
    };
    let reasons = c.cancellation_reasons();
    if reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
    {
        return None;
    }
    Some(
        reasons
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect(),
    )
}

impl DynamoAccessStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAccessStore {
            client,
            table: table.into(),
        }
    }

    async fn spent(&self, pk: String) -> Result<Usdc, AccessError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&e.into_service_error()))?;
        Ok(out
            .item()
            .and_then(|i| i.get("spent"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i128>().ok())
            .map_or(Usdc::ZERO, |v| {
                Usdc::from_atomic(u64::try_from(v.max(0)).unwrap_or(u64::MAX))
            }))
    }

    fn raise(
        &self,
        pk: String,
        amount: Usdc,
        max: Usdc,
        ttl: u64,
    ) -> Result<TransactWriteItem, AccessError> {
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .update_expression(
                    "SET spent = if_not_exists(spent, :zero) + :amt, expiresAt = :ttl",
                )
                .condition_expression("attribute_not_exists(spent) OR spent <= :max")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":amt", n(amount.atomic()))
                .expression_attribute_values(":max", n(max.atomic()))
                .expression_attribute_values(":ttl", n(ttl))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn lower(&self, pk: String, amount: Usdc) -> Result<TransactWriteItem, AccessError> {
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .update_expression("SET spent = spent - :amt")
                .condition_expression("attribute_exists(spent)")
                .expression_attribute_values(":amt", n(amount.atomic()))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<bool>>, AccessError> {
        for _ in 0..CONFLICT_ATTEMPTS {
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(None),
                Err(e) => {
                    let e = e.into_service_error();
                    match failed_conditions(&e) {
                        Some(failed) => return Ok(Some(failed)),
                        None if matches!(
                            e,
                            TransactWriteItemsError::TransactionCanceledException(_)
                        ) =>
                        {
                            tokio::task::yield_now().await;
                        }
                        None => return Err(unavailable(&e)),
                    }
                }
            }
        }
        Err(AccessError::Unavailable(
            "DynamoDB: transaction kept conflicting".into(),
        ))
    }

    async fn refusal(&self, r: &Reservation, caps: &DailyCaps) -> AccessError {
        let committed = Committed {
            user: self
                .spent(user_pk(&r.user, &r.day))
                .await
                .unwrap_or_default(),
            wallet: self
                .spent(wallet_pk(r.wallet, &r.day))
                .await
                .unwrap_or_default(),
        };
        match check_caps(r.amount, committed, caps) {
            Err(refusal) => refusal.into(),
            // Read after the failed write; the counters moved in between.
            // Refuse anyway, naming the user's cap with what we read.
            Ok(()) => CapRefusal::User {
                amount: r.amount,
                committed: committed.user,
                limit: caps.per_user,
            }
            .into(),
        }
    }
}

#[async_trait]
impl AccessStore for DynamoAccessStore {
    async fn claim_session(&self, user: &str, session: &str) -> Result<Claim, AccessError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("session#{session}")))
            .item("owner", s(user))
            .condition_expression("attribute_not_exists(pk) OR #o = :u")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":u", s(user))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Owned),
            Err(e) => {
                let e = e.into_service_error();
                if e.code() == Some("ConditionalCheckFailedException") {
                    Ok(Claim::OtherUser)
                } else {
                    Err(unavailable(&e))
                }
            }
        }
    }

    async fn reserve(&self, r: &Reservation, caps: &DailyCaps) -> Result<(), AccessError> {
        let (Some(user_max), Some(wallet_max)) = (
            max_prior(r.amount, caps.per_user),
            max_prior(r.amount, caps.wallet),
        ) else {
            return Err(self.refusal(r, caps).await);
        };
        let ttl = now() + KEEP_SECONDS;
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .item("pk", s(reservation_pk(r)))
                .item("amount", n(r.amount.atomic()))
                .item("day", s(r.day.clone()))
                .item("expiresAt", n(ttl))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.raise(user_pk(&r.user, &r.day), r.amount, user_max, ttl)?,
            self.raise(wallet_pk(r.wallet, &r.day), r.amount, wallet_max, ttl)?,
        ];
        match self.transact(items).await? {
            None => Ok(()),
            // Already reserved by an earlier attempt of this request.
            Some(failed) if failed.first() == Some(&true) => Ok(()),
            Some(_) => Err(self.refusal(r, caps).await),
        }
    }

    async fn release(&self, r: &Reservation) -> Result<(), AccessError> {
        // The reservation item says which day and amount it holds (a
        // release after midnight or a restart still finds the right counters).
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(reservation_pk(r)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&e.into_service_error()))?;
        let Some(item) = out.item() else {
            return Ok(());
        };
        let day = item.get("day").and_then(|v| v.as_s().ok()).cloned();
        let amount = item
            .get("amount")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Usdc::from_atomic);
        let (Some(day), Some(amount)) = (day, amount) else {
            return Err(AccessError::Unavailable(format!(
                "DynamoDB: reservation {} is malformed",
                reservation_pk(r)
            )));
        };
        let r = &Reservation {
            day,
            amount,
            ..r.clone()
        };
        let delete = built(
            Delete::builder()
                .table_name(&self.table)
                .key("pk", s(reservation_pk(r)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.lower(user_pk(&r.user, &r.day), r.amount)?,
            self.lower(wallet_pk(r.wallet, &r.day), r.amount)?,
        ];
        // A failed condition means nothing is reserved under this id.
        self.transact(items).await.map(|_| ())
    }

    async fn committed(
        &self,
        user: &str,
        wallet: Address,
        day: &str,
    ) -> Result<Committed, AccessError> {
        Ok(Committed {
            user: self.spent(user_pk(user, day)).await?,
            wallet: self.spent(wallet_pk(wallet, day)).await?,
        })
    }
}
