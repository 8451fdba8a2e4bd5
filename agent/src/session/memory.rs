//! Session state in Amazon Bedrock AgentCore Memory (short-term memory events).
//!
//! Each [`SessionStore::append`] is one `CreateEvent` in memory
//! `BEDROCK_AGENTCORE_MEMORY_ID`, under `actorId`/`sessionId` (ids mapped by
//! [`storage_id`](super::ids::storage_id)), whose payload is a single `blob`
//! holding `{"v": 1, "key": <idempotency key>, "records": [...]}`. One blob
//! per append makes an append atomic: there is no state where half of a
//! turn's records (say a toolUse without its toolResult, or a prepared
//! payment without its quote) are visible.
//!
//! Ordering: events are immutable and `ListEvents` returns them newest first,
//! so order comes from `eventTimestamp`, which we keep strictly increasing
//! per session (now, or last + 1 ms on a tie or a clock step back). The
//! last timestamp is remembered from the previous load/append, or read
//! from the service when this process has not seen the session yet (after a
//! restart).
//!
//! Idempotency: `clientToken` is a digest of (actor, session, key), so a
//! retried append of the same records is ignored by the service; as a second
//! line of defence (and for emulators that ignore `clientToken`), `load`
//! skips any event whose key it has already seen.
//!
//! Paging: `ListEvents` is read to the end (`nextToken`), 100 per page.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use aws_sdk_bedrockagentcore::{Client, error::DisplayErrorContext, types::PayloadType};
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Record, SessionStore, SessionStoreError, ids::storage_id};
use crate::document::{doc_to_json, json_to_doc};

/// Envelope version written in every blob.
const BLOB_VERSION: u32 = 1;
/// `ListEvents` page size (the API maximum).
const PAGE_SIZE: i32 = 100;

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    key: String,
    records: Vec<Record>,
}

/// AgentCore Memory as a [`SessionStore`].
pub struct MemorySessionStore {
    client: Client,
    memory_id: String,
    /// (actor, session) -> newest eventTimestamp written or seen, in ms.
    last_ts: Mutex<HashMap<(String, String), i64>>,
}

impl MemorySessionStore {
    pub fn new(client: Client, memory_id: impl Into<String>) -> Self {
        MemorySessionStore {
            client,
            memory_id: memory_id.into(),
            last_ts: Mutex::new(HashMap::new()),
        }
    }

    fn remembered_ts(&self, key: &(String, String)) -> Option<i64> {
        self.last_ts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    fn remember_ts(&self, key: (String, String), ts: i64) {
        let mut map = self.last_ts.lock().unwrap_or_else(|e| e.into_inner());
        let slot = map.entry(key).or_insert(ts);
        *slot = (*slot).max(ts);
    }

    /// Every event of a session as (timestamp ms, event id, envelope), oldest first.
    async fn list(
        &self,
        actor: &str,
        session: &str,
    ) -> Result<Vec<(i64, String, Option<Envelope>)>, SessionStoreError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_events()
                .memory_id(&self.memory_id)
                .actor_id(actor)
                .session_id(session)
                .include_payloads(true)
                .max_results(PAGE_SIZE)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    SessionStoreError::Unavailable(format!(
                        "ListEvents: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            for event in page.events() {
                let ts = event.event_timestamp().to_millis().map_err(|e| {
                    SessionStoreError::Corrupt(format!("event {} timestamp: {e}", event.event_id()))
                })?;
                let envelope = event.payload().iter().find_map(|p| match p {
                    PayloadType::Blob(doc) => {
                        serde_json::from_value::<Envelope>(doc_to_json(doc)).ok()
                    }
                    _ => None,
                });
                out.push((ts, event.event_id().to_owned(), envelope));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(out)
    }
}

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The token AgentCore uses to ignore a repeated `CreateEvent`.
fn client_token(actor: &str, session: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [actor, session, key] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(
        &self,
        actor_id: &str,
        session_id: &str,
    ) -> Result<Vec<Record>, SessionStoreError> {
        let (actor, session) = (storage_id(actor_id), storage_id(session_id));
        let events = self.list(&actor, &session).await?;
        if let Some((ts, _, _)) = events.last() {
            self.remember_ts((actor, session), *ts);
        }
        let mut seen = HashSet::new();
        let mut records = Vec::new();
        for envelope in events.into_iter().filter_map(|(_, _, e)| e) {
            if envelope.v == BLOB_VERSION && seen.insert(envelope.key) {
                records.extend(envelope.records);
            }
        }
        Ok(records)
    }

    async fn append(
        &self,
        actor_id: &str,
        session_id: &str,
        records: &[Record],
        idempotency_key: &str,
    ) -> Result<(), SessionStoreError> {
        let (actor, session) = (storage_id(actor_id), storage_id(session_id));
        let slot = (actor.clone(), session.clone());
        let last = match self.remembered_ts(&slot) {
            Some(ts) => Some(ts),
            // First write from this process: learn the newest timestamp.
            None => self.list(&actor, &session).await?.last().map(|e| e.0),
        };
        let ts = last.map_or(now_ms(), |last| now_ms().max(last + 1));
        let envelope = Envelope {
            v: BLOB_VERSION,
            key: idempotency_key.to_owned(),
            records: records.to_vec(),
        };
        let blob = serde_json::to_value(&envelope)
            .map_err(|e| SessionStoreError::Corrupt(format!("record not serialisable: {e}")))?;
        self.client
            .create_event()
            .memory_id(&self.memory_id)
            .actor_id(&actor)
            .session_id(&session)
            .event_timestamp(DateTime::from_millis(ts))
            .payload(PayloadType::Blob(json_to_doc(&blob)))
            .client_token(client_token(&actor, &session, idempotency_key))
            .send()
            .await
            .map_err(|e| {
                SessionStoreError::Unavailable(format!("CreateEvent: {}", DisplayErrorContext(&e)))
            })?;
        self.remember_ts(slot, ts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn client_tokens_are_stable_and_distinct() {
        assert_eq!(client_token("a", "s", "k"), client_token("a", "s", "k"));
        assert_ne!(client_token("a", "s", "k"), client_token("a", "s", "k2"));
        assert_ne!(
            client_token("a", "sk", ""),
            client_token("a", "s", "k"),
            "parts are delimited"
        );
        assert_eq!(client_token("a", "s", "k").len(), 64);
    }
}
