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
use aws_smithy_types::{DateTime, Document, Number};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Record, SessionStore, StoreError, ids::storage_id};

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
    ) -> Result<Vec<(i64, String, Option<Envelope>)>, StoreError> {
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
                    StoreError::Unavailable(format!("ListEvents: {}", DisplayErrorContext(&e)))
                })?;
            for event in page.events() {
                let ts = event.event_timestamp().to_millis().map_err(|e| {
                    StoreError::Corrupt(format!("event {} timestamp: {e}", event.event_id()))
                })?;
                let envelope = event.payload().iter().find_map(|p| match p {
                    PayloadType::Blob(doc) => {
                        serde_json::from_value::<Envelope>(document_to_json(doc)).ok()
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
    async fn load(&self, actor_id: &str, session_id: &str) -> Result<Vec<Record>, StoreError> {
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
    ) -> Result<(), StoreError> {
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
            .map_err(|e| StoreError::Corrupt(format!("record not serialisable: {e}")))?;
        self.client
            .create_event()
            .memory_id(&self.memory_id)
            .actor_id(&actor)
            .session_id(&session)
            .event_timestamp(DateTime::from_millis(ts))
            .payload(PayloadType::Blob(json_to_document(&blob)))
            .client_token(client_token(&actor, &session, idempotency_key))
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("CreateEvent: {}", DisplayErrorContext(&e)))
            })?;
        self.remember_ts(slot, ts);
        Ok(())
    }
}

/// serde_json -> Smithy document (the SDK's type for a `blob` payload).
pub(crate) fn json_to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            // Records keep money as decimal strings; any other number is data.
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(json_to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
    }
}

/// Smithy document -> serde_json.
pub(crate) fn document_to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => Value::from(*f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(document_to_json).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_round_trip() {
        let v = json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": "0.04"}});
        assert_eq!(document_to_json(&json_to_document(&v)), v);
    }

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
