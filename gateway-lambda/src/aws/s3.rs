//! Paid content on S3, under `results/<payment id>.json` in `RESULTS_BUCKET`
//! (private, encrypted, expiring: see the CDK gateway stack).

use async_trait::async_trait;
use aws_sdk_s3::{Client, error::ProvideErrorMetadata, primitives::ByteStream};

use crate::store::{ResultStore, StoreError};

pub struct S3ResultStore {
    client: Client,
    bucket: String,
}

const PREFIX: &str = "results/";

impl S3ResultStore {
    pub fn new(client: Client, bucket: String) -> Self {
        S3ResultStore { client, bucket }
    }
}

#[async_trait]
impl ResultStore for S3ResultStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{PREFIX}{key}"))
            .content_type("application/json")
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| StoreError(format!("S3 put {key}: {}", e.into_service_error())))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{PREFIX}{key}"))
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.body
                    .collect()
                    .await
                    .map_err(|e| StoreError(format!("S3 get {key}: {e}")))?
                    .to_vec(),
            )),
            Err(e) => {
                let e = e.into_service_error();
                if e.code() == Some("NoSuchKey") {
                    Ok(None)
                } else {
                    Err(StoreError(format!("S3 get {key}: {e}")))
                }
            }
        }
    }
}
