//! Durable payment state: the replay guard and what was sold for each
//! payment, shared by every instance of the gateway.
//!
//! A payment is identified by `(payer, nonce)` (EIP-3009 makes that pair
//! usable once on chain). Its record moves through:
//!
//! ```text
//!   (none) ──claim──▶ InFlight ──content kept──▶ Settling ──proof──▶ Settled
//!      ▲                 │                        │  │
//!      ├──release────────┘ (verify or generation  │  └─ nonce used, not paid
//!      │                    failed: the payment   │     to us ──▶ Refused (final)
//!      │                    may be retried)       │
//!      └──release─────────────────────────────────┘ only when no money can move:
//!                    validBefore passed, or the known transaction reverted
//!                    (final) with the nonce unused; otherwise it stays
//!                    Settling and the next try asks the chain first
//! ```
//!
//! `Settled` and `Refused` are final and kept for the retention period
//! (`PAYMENT_RETENTION_DAYS`, at least as long as the results bucket keeps
//! the content): a settled payment presented again, even after its
//! `validBefore`, gets its content again.
//!
//! Each transition is a compare-and-set on the record's `version`, so two
//! requests carrying one payment can never both proceed: in DynamoDB a
//! conditional `PutItem` (`attribute_not_exists` or `version = :v`), locally a
//! file created with `O_EXCL` / replaced under a lock. A claim carries a
//! lease; a record whose lease has passed (its request crashed) may be
//! re-claimed. A record also pins the request it pays for (`fingerprint`):
//! the same payment presented for another request is refused.
//!
//! The content is written to the [`ResultStore`] *before* settlement, so a
//! settled payment always has its content, even if the process dies before
//! answering: a retry with the same payment header gets it without paying
//! again.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};

use crate::reservation::Reservations;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use x402::wire::SettleResponse;

/// `(payer, nonce)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PaymentKey {
    pub payer: Address,
    pub nonce: B256,
}

impl PaymentKey {
    /// `0x<payer>-0x<nonce>`, lowercase: the DynamoDB key and file name.
    pub fn id(&self) -> String {
        format!("{:#x}-{:#x}", self.payer, self.nonce)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PaymentState {
    /// One request is verifying / generating with this payment.
    InFlight { lease_until: u64 },
    /// Content kept under `result_key`; settlement sent or about to be, its
    /// outcome not known yet.
    Settling {
        result_key: String,
        lease_until: u64,
        /// The settlement transaction the facilitator named, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx: Option<String>,
    },
    /// Settled on chain; `result_key` holds what was sold.
    Settled {
        result_key: String,
        settlement: SettleResponse,
    },
    /// The nonce was used on chain without paying us (canceled, or spent by
    /// another transfer): this payment can never pay. Final.
    Refused {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Digest of the request this payment pays for.
    pub fingerprint: String,
    #[serde(flatten)]
    pub state: PaymentState,
    /// Incremented by every write; the compare-and-set token.
    pub version: u64,
    /// Unix seconds after which the record may be deleted (TTL).
    pub expires_at: u64,
}

impl PaymentRecord {
    /// Whether another request may take this record over at `now`.
    pub fn lease_expired(&self, now: u64) -> bool {
        match &self.state {
            PaymentState::InFlight { lease_until } | PaymentState::Settling { lease_until, .. } => {
                *lease_until <= now
            }
            PaymentState::Settled { .. } | PaymentState::Refused { .. } => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("payment store: {0}")]
pub struct StoreError(pub String);

/// The replay guard. Implementations: [`FileStore`] (local), DynamoDB (`aws`).
#[async_trait]
pub trait PaymentStore: Send + Sync {
    async fn get(&self, key: &PaymentKey) -> Result<Option<PaymentRecord>, StoreError>;

    /// Writes `record` if the stored version is `expected` (`None`: no record
    /// may exist). `Ok(false)` when the condition failed: someone else won.
    async fn put_if(
        &self,
        key: &PaymentKey,
        expected: Option<u64>,
        record: &PaymentRecord,
    ) -> Result<bool, StoreError>;

    /// Deletes the record if its version is `expected`.
    async fn delete_if(&self, key: &PaymentKey, expected: u64) -> Result<bool, StoreError>;
}

/// Per-payer reservations ([`crate::reservation`]). Implementations:
/// [`FileStore`] (local), DynamoDB (`aws`, an item per payer in the payments
/// table).
#[async_trait]
pub trait ReservationStore: Send + Sync {
    /// The payer's reservations; empty with version 0 if there are none.
    async fn reservations(&self, payer: Address) -> Result<Reservations, StoreError>;
    /// Writes `next` if the stored version is `expected` (0: none stored).
    /// `Ok(false)` when someone else wrote first.
    async fn put_reservations_if(
        &self,
        payer: Address,
        expected: u64,
        next: &Reservations,
    ) -> Result<bool, StoreError>;
}

/// Paid content, by key. Implementations: [`FileStore`] (local), S3 (`aws`).
#[async_trait]
pub trait ResultStore: Send + Sync {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Payment records and results as files under one directory (`RESULTS_DIR`):
/// `payments/<id>.json`, `reservations/<payer>.json` and `results/<key>`. Writes go to a temporary file
/// renamed into place, so a crash never leaves half a record; a first claim
/// is an exclusive create. One gateway process per directory.
pub struct FileStore {
    root: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["payments", "results", "reservations"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| StoreError(format!("{}: {e}", root.join(sub).display())))?;
        }
        Ok(FileStore {
            root,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn record_path(&self, key: &PaymentKey) -> PathBuf {
        self.root
            .join("payments")
            .join(format!("{}.json", key.id()))
    }

    fn result_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || key.starts_with('.')
        {
            return Err(StoreError(format!("invalid result key {key:?}")));
        }
        Ok(self.root.join("results").join(key))
    }

    async fn read_record(path: &Path) -> Result<Option<PaymentRecord>, StoreError> {
        match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError(format!("{}: {e}", path.display()))),
        }
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|e| StoreError(format!("{}: {e}", tmp.display())))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| StoreError(format!("{}: {e}", path.display())))
}

#[async_trait]
impl PaymentStore for FileStore {
    async fn get(&self, key: &PaymentKey) -> Result<Option<PaymentRecord>, StoreError> {
        // Under the lock: never read a record while it is being created.
        let _g = self.lock.lock().await;
        Self::read_record(&self.record_path(key)).await
    }

    async fn put_if(
        &self,
        key: &PaymentKey,
        expected: Option<u64>,
        record: &PaymentRecord,
    ) -> Result<bool, StoreError> {
        let _g = self.lock.lock().await;
        let path = self.record_path(key);
        let current = Self::read_record(&path).await?;
        if current.as_ref().map(|r| r.version) != expected {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(record).expect("records serialise");
        write_versioned(&path, expected.is_none(), &bytes).await
    }

    async fn delete_if(&self, key: &PaymentKey, expected: u64) -> Result<bool, StoreError> {
        let _g = self.lock.lock().await;
        let path = self.record_path(key);
        match Self::read_record(&path).await? {
            Some(r) if r.version == expected => {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Writes `bytes` at `path` (the caller holds the lock and checked the
/// version): an exclusive create when nothing may exist yet, else an atomic
/// replace. `Ok(false)` if a first write finds the file there.
async fn write_versioned(path: &Path, create: bool, bytes: &[u8]) -> Result<bool, StoreError> {
    if create {
        // Exclusive create: the conditional insert.
        use tokio::io::AsyncWriteExt as _;
        let mut f = match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(StoreError(format!("{}: {e}", path.display()))),
        };
        f.write_all(bytes)
            .await
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        f.sync_all()
            .await
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        return Ok(true);
    }
    write_atomically(path, bytes).await?;
    Ok(true)
}

#[async_trait]
impl ReservationStore for FileStore {
    async fn reservations(&self, payer: Address) -> Result<Reservations, StoreError> {
        let _g = self.lock.lock().await;
        self.read_reservations(payer).await
    }

    async fn put_reservations_if(
        &self,
        payer: Address,
        expected: u64,
        next: &Reservations,
    ) -> Result<bool, StoreError> {
        let _g = self.lock.lock().await;
        if self.read_reservations(payer).await?.version != expected {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(next).expect("reservations serialise");
        write_versioned(&self.reservations_path(payer), expected == 0, &bytes).await
    }
}

impl FileStore {
    fn reservations_path(&self, payer: Address) -> PathBuf {
        self.root
            .join("reservations")
            .join(format!("{payer:#x}.json"))
    }

    async fn read_reservations(&self, payer: Address) -> Result<Reservations, StoreError> {
        let path = self.reservations_path(payer);
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reservations::default()),
            Err(e) => Err(StoreError(format!("{}: {e}", path.display()))),
        }
    }
}

#[async_trait]
impl ResultStore for FileStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomically(&self.result_path(key)?, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.result_path(key)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError(format!("{}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PaymentKey {
        PaymentKey {
            payer: Address::repeat_byte(1),
            nonce: B256::repeat_byte(n),
        }
    }

    fn rec(version: u64, state: PaymentState) -> PaymentRecord {
        PaymentRecord {
            fingerprint: "f".into(),
            state,
            version,
            expires_at: 0,
        }
    }

    #[tokio::test]
    async fn a_payment_is_claimed_once_and_transitions_are_compare_and_set() {
        let dir = testkit::TempDir::new("gw-store");
        let s = FileStore::new(&*dir).unwrap();
        let k = key(1);
        let r1 = rec(1, PaymentState::InFlight { lease_until: 10 });
        assert!(s.put_if(&k, None, &r1).await.unwrap());
        assert!(
            !s.put_if(&k, None, &r1).await.unwrap(),
            "second claim loses"
        );
        let r2 = rec(
            2,
            PaymentState::Settling {
                result_key: "r".into(),
                lease_until: 20,
                tx: None,
            },
        );
        assert!(
            !s.put_if(&k, Some(7), &r2).await.unwrap(),
            "stale version loses"
        );
        assert!(s.put_if(&k, Some(1), &r2).await.unwrap());
        assert_eq!(PaymentStore::get(&s, &k).await.unwrap(), Some(r2.clone()));
        assert!(!s.delete_if(&k, 1).await.unwrap());
        assert!(s.delete_if(&k, 2).await.unwrap());
        assert_eq!(PaymentStore::get(&s, &k).await.unwrap(), None);
        // Survives a new store over the same directory (a restart).
        assert!(s.put_if(&k, None, &r1).await.unwrap());
        let again = FileStore::new(&*dir).unwrap();
        assert_eq!(PaymentStore::get(&again, &k).await.unwrap(), Some(r1));
    }

    #[tokio::test]
    async fn concurrent_claims_of_one_payment_have_one_winner() {
        let dir = testkit::TempDir::new("gw-store");
        let s = std::sync::Arc::new(FileStore::new(&*dir).unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.put_if(
                        &key(2),
                        None,
                        &rec(1, PaymentState::InFlight { lease_until: 1 }),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn reservations_are_compare_and_set_per_payer() {
        let dir = testkit::TempDir::new("gw-store");
        let s = FileStore::new(&*dir).unwrap();
        let payer = Address::repeat_byte(2);
        assert_eq!(
            s.reservations(payer).await.unwrap(),
            Reservations::default()
        );
        let v1 = Reservations {
            entries: vec![],
            version: 1,
        };
        assert!(s.put_reservations_if(payer, 0, &v1).await.unwrap());
        assert!(
            !s.put_reservations_if(payer, 0, &v1).await.unwrap(),
            "created once"
        );
        let v2 = Reservations {
            entries: vec![],
            version: 2,
        };
        assert!(
            !s.put_reservations_if(payer, 7, &v2).await.unwrap(),
            "stale"
        );
        assert!(s.put_reservations_if(payer, 1, &v2).await.unwrap());
        assert_eq!(s.reservations(payer).await.unwrap(), v2);
        assert_eq!(
            s.reservations(Address::repeat_byte(3))
                .await
                .unwrap()
                .version,
            0,
            "per payer"
        );
    }

    #[tokio::test]
    async fn results_are_kept_by_key_and_keys_stay_inside_the_directory() {
        let dir = testkit::TempDir::new("gw-store");
        let s = FileStore::new(&*dir).unwrap();
        s.put("abc-1.json", b"{}").await.unwrap();
        assert_eq!(
            ResultStore::get(&s, "abc-1.json").await.unwrap().unwrap(),
            b"{}"
        );
        assert_eq!(ResultStore::get(&s, "missing").await.unwrap(), None);
        for bad in ["../x", "a/b", "", ".hidden"] {
            assert!(s.put(bad, b"x").await.is_err(), "{bad}");
        }
    }

    #[test]
    fn leases_expire_except_when_settled() {
        let r = rec(1, PaymentState::InFlight { lease_until: 10 });
        assert!(!r.lease_expired(9));
        assert!(r.lease_expired(10));
        let r = rec(
            1,
            PaymentState::Settled {
                result_key: "k".into(),
                settlement: SettleResponse {
                    success: true,
                    error_reason: None,
                    payer: None,
                    transaction: "0x".into(),
                    network: "base-sepolia".into(),
                },
            },
        );
        assert!(!r.lease_expired(u64::MAX));
    }
}
