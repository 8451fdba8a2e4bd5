//! Where bought images are kept: S3 with presigned GET URLs (configurable
//! expiry) in AWS, a directory with `file://` URLs locally. Callers hand out
//! URLs, never megabytes of base64.

use std::{path::PathBuf, time::Duration};

use async_trait::async_trait;

/// An image as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("image store: {0}")]
pub struct ImageStoreError(pub String);

#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores `png` under `key` (idempotent: same key, same bytes).
    async fn put(&self, key: &str, png: &[u8]) -> Result<Stored, ImageStoreError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, ImageStoreError>;
}

/// Keys are made by the agent (`<session>/<request>.png`); refuse anything
/// that could leave the store's root anyway.
fn check_key(key: &str) -> Result<(), ImageStoreError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ImageStoreError(format!("invalid key {key:?}")))
    }
}

/// A local directory.
pub struct DirImageStore {
    root: PathBuf,
}

impl DirImageStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirImageStore { root: root.into() }
    }
}

#[async_trait]
impl ImageStore for DirImageStore {
    async fn put(&self, key: &str, png: &[u8]) -> Result<Stored, ImageStoreError> {
        check_key(key)?;
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ImageStoreError(format!("{}: {e}", dir.display())))?;
        }
        // Write then rename, so a crash never leaves half an image under the key.
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, png)
            .await
            .map_err(|e| ImageStoreError(format!("{}: {e}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| ImageStoreError(format!("{}: {e}", path.display())))?;
        let abs = std::path::absolute(&path).unwrap_or(path);
        Ok(Stored {
            key: key.into(),
            url: format!("file://{}", abs.display()),
        })
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, ImageStoreError> {
        check_key(key)?;
        tokio::fs::read(self.root.join(key))
            .await
            .map_err(|e| ImageStoreError(format!("{key}: {e}")))
    }
}

/// An S3 bucket; URLs are presigned GETs.
pub struct S3ImageStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    expiry: Duration,
}

impl S3ImageStore {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        expiry: Duration,
    ) -> Self {
        S3ImageStore {
            client,
            bucket,
            prefix,
            expiry,
        }
    }
}

#[async_trait]
impl ImageStore for S3ImageStore {
    async fn put(&self, key: &str, png: &[u8]) -> Result<Stored, ImageStoreError> {
        check_key(key)?;
        let full = format!("{}{key}", self.prefix);
        let err = |e: &dyn std::fmt::Display| {
            ImageStoreError(format!("s3://{}/{full}: {e}", self.bucket))
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .content_type("image/png")
            .body(png.to_vec().into())
            .send()
            .await
            .map_err(|e| err(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let presign = aws_sdk_s3::presigning::PresigningConfig::expires_in(self.expiry)
            .map_err(|e| err(&e))?;
        let url = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .presigned(presign)
            .await
            .map_err(|e| err(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(Stored {
            key: key.into(),
            url: url.uri().to_owned(),
        })
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, ImageStoreError> {
        check_key(key)?;
        let full = format!("{}{key}", self.prefix);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| {
                ImageStoreError(format!(
                    "s3://{}/{full}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| ImageStoreError(e.to_string()))?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_store() {
        assert!(check_key("s-1/img-abc.png").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "a b",
            "a\\b",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn dir_store_round_trip() {
        let dir = std::env::temp_dir().join(format!("tools-images-{:x}", rand::random::<u128>()));
        let s = DirImageStore::new(&dir);
        let stored = s.put("s1/a.png", b"png").await.unwrap();
        assert!(stored.url.starts_with("file:///"), "{}", stored.url);
        assert_eq!(s.get("s1/a.png").await.unwrap(), b"png");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
