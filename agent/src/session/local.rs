//! The embedded session store: one JSON-lines file per session, used when
//! `BEDROCK_AGENTCORE_MEMORY_ID` is unset (local demo, tests).
//!
//! Layout: `<dir>/<actor>/<session>.jsonl` (ids mapped by
//! [`storage_id`](super::ids::storage_id)). Each [`SessionStore::append`] is
//! one line `{"key": <idempotency key>, "records": [...]}`, written with a
//! single `write` and `fsync`ed before `append` returns, so:
//! - the state survives the process being killed (`kill -9`) and restarted;
//! - an append is all-or-nothing: a line cut short by a crash has no final
//!   newline, is ignored by [`load`](SessionStore::load) and is cut off before
//!   the next append;
//! - a retried append (same key) finds its line and writes nothing.
//!
//! One process owns a directory at a time (the agent serialises a session's
//! invocations; this store also serialises appends per file, so two tasks
//! racing on one session cannot interleave lines).

use std::{
    collections::{HashMap, HashSet},
    fs::{self, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Record, SessionStore, SessionStoreError, ids::storage_id};

/// JSON-lines session files under a directory.
pub struct LocalSessionStore {
    dir: PathBuf,
    /// One lock per file, so appends to a file never interleave.
    files: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    records: Vec<Record>,
}

impl LocalSessionStore {
    /// A store rooted at `dir` (created on first append).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalSessionStore {
            dir: dir.into(),
            files: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, actor_id: &str, session_id: &str) -> PathBuf {
        self.dir
            .join(storage_id(actor_id))
            .join(format!("{}.jsonl", storage_id(session_id)))
    }

    fn file_lock(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.entry(path.to_owned()).or_default().clone()
    }
}

fn unavailable(path: &Path, e: &std::io::Error) -> SessionStoreError {
    SessionStoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// Complete lines of a file, and the byte length they cover. A trailing
/// fragment without `\n` is a torn write and is not part of the state.
fn read_lines(path: &Path) -> Result<(Vec<Line>, u64), SessionStoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(unavailable(path, &e)),
    };
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    for (n, raw) in text[..complete].lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| {
            SessionStoreError::Corrupt(format!("{} line {}: {e}", path.display(), n + 1))
        })?;
        lines.push(line);
    }
    Ok((lines, complete as u64))
}

fn append_line(path: &Path, records: &[Record], key: &str) -> Result<(), SessionStoreError> {
    let (lines, complete_len) = read_lines(path)?;
    if lines.iter().any(|l| l.key == key) {
        return Ok(()); // already written by an earlier attempt
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| unavailable(parent, &e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| unavailable(path, &e))?;
    // Drop a torn tail left by a crash, then write after the last good line.
    file.set_len(complete_len)
        .map_err(|e| unavailable(path, &e))?;
    file.seek(SeekFrom::Start(complete_len))
        .map_err(|e| unavailable(path, &e))?;
    let mut buf = serde_json::to_vec(&Line {
        key: key.to_owned(),
        records: records.to_vec(),
    })
    .map_err(|e| SessionStoreError::Corrupt(format!("record not serialisable: {e}")))?;
    buf.push(b'\n');
    file.write_all(&buf).map_err(|e| unavailable(path, &e))?;
    file.sync_data().map_err(|e| unavailable(path, &e))
}

#[async_trait]
impl SessionStore for LocalSessionStore {
    async fn load(
        &self,
        actor_id: &str,
        session_id: &str,
    ) -> Result<Vec<Record>, SessionStoreError> {
        let path = self.path(actor_id, session_id);
        let lock = self.file_lock(&path);
        let _guard = lock.lock().await;
        let (lines, _) = tokio::task::spawn_blocking(move || read_lines(&path))
            .await
            .map_err(|e| SessionStoreError::Unavailable(e.to_string()))??;
        // Keys are unique by construction; skipping repeats keeps reads exact
        // even if a file was edited or merged by hand.
        let mut seen = HashSet::new();
        Ok(lines
            .into_iter()
            .filter(|l| seen.insert(l.key.clone()))
            .flat_map(|l| l.records)
            .collect())
    }

    async fn append(
        &self,
        actor_id: &str,
        session_id: &str,
        records: &[Record],
        idempotency_key: &str,
    ) -> Result<(), SessionStoreError> {
        let path = self.path(actor_id, session_id);
        let lock = self.file_lock(&path);
        let _guard = lock.lock().await;
        let (records, key) = (records.to_vec(), idempotency_key.to_owned());
        tokio::task::spawn_blocking(move || append_line(&path, &records, &key))
            .await
            .map_err(|e| SessionStoreError::Unavailable(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(text: &str) -> Record {
        Record::Message {
            message: json!({"role": "user", "content": [{"text": text}]}),
        }
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("agent-local-store-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn appends_in_order_and_survives_a_new_instance() {
        let dir = tmp();
        let s = LocalSessionStore::new(&dir);
        assert!(s.load("a", "s1").await.unwrap().is_empty());
        s.append("a", "s1", &[msg("one"), msg("two")], "k1")
            .await
            .unwrap();
        s.append(
            "a",
            "s1",
            &[Record::Ledger {
                entry: json!({"paid": "0.04"}),
            }],
            "k2",
        )
        .await
        .unwrap();
        let again = LocalSessionStore::new(&dir); // as after a restart
        let got = again.load("a", "s1").await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], msg("one"));
        assert_eq!(
            got[2],
            Record::Ledger {
                entry: json!({"paid": "0.04"})
            }
        );
    }

    #[tokio::test]
    async fn a_retried_append_is_stored_once() {
        let s = LocalSessionStore::new(tmp());
        for _ in 0..3 {
            s.append("a", "s", &[msg("x")], "same-key").await.unwrap();
        }
        assert_eq!(s.load("a", "s").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sessions_and_actors_are_separate() {
        let s = LocalSessionStore::new(tmp());
        s.append("a", "s1", &[msg("mine")], "k").await.unwrap();
        s.append("a", "s2", &[msg("yours")], "k").await.unwrap();
        s.append("b", "s1", &[msg("theirs")], "k").await.unwrap();
        assert_eq!(s.load("a", "s1").await.unwrap(), vec![msg("mine")]);
        assert_eq!(s.load("a", "s2").await.unwrap(), vec![msg("yours")]);
        assert_eq!(s.load("b", "s1").await.unwrap(), vec![msg("theirs")]);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_cut_before_the_next_append() {
        let dir = tmp();
        let s = LocalSessionStore::new(&dir);
        s.append("a", "s", &[msg("kept")], "k1").await.unwrap();
        let path = s.path("a", "s");
        // A crash in the middle of writing the second line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"key":"k2","records":[{"kind":"mess"#)
            .unwrap();
        drop(f);
        assert_eq!(s.load("a", "s").await.unwrap(), vec![msg("kept")]);
        s.append("a", "s", &[msg("next")], "k2").await.unwrap();
        assert_eq!(
            s.load("a", "s").await.unwrap(),
            vec![msg("kept"), msg("next")]
        );
    }

    #[tokio::test]
    async fn concurrent_appends_to_one_session_never_interleave() {
        let s = Arc::new(LocalSessionStore::new(tmp()));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.append("a", "s", &[msg(&i.to_string())], &format!("k{i}"))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(s.load("a", "s").await.unwrap().len(), 20);
    }

    #[tokio::test]
    async fn a_corrupt_line_is_reported_not_skipped() {
        let s = LocalSessionStore::new(tmp());
        s.append("a", "s", &[msg("x")], "k1").await.unwrap();
        let path = s.path("a", "s");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        assert!(matches!(
            s.load("a", "s").await,
            Err(SessionStoreError::Corrupt(_))
        ));
    }
}
