//! The S3 image store against the local stack's moto: put, presigned GET
//! URL that serves the bytes, get.

use std::time::Duration;

use tools::storage::{ImageStore, S3ImageStore};

#[tokio::test]
async fn s3_store_keeps_images_behind_presigned_urls() {
    let stack = testkit::Stack::load().expect("this test needs the local stack (moto)");
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.aws_config().await)
            .force_path_style(true)
            .build(),
    );
    let bucket = stack.create_bucket("tools-images").await.unwrap();

    let store = S3ImageStore::new(
        client,
        bucket.clone(),
        "images/".into(),
        Duration::from_secs(600),
    );
    let stored = store
        .put("actor/session/img-1.png", b"\x89PNG bytes")
        .await
        .unwrap();
    assert_eq!(stored.key, "actor/session/img-1.png");
    assert!(
        stored
            .url
            .contains(&format!("/{bucket}/images/actor/session/img-1.png")),
        "{}",
        stored.url
    );
    assert!(
        stored.url.contains("X-Amz-Signature="),
        "presigned: {}",
        stored.url
    );
    let body = reqwest::get(&stored.url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"\x89PNG bytes");
    assert_eq!(
        store.get("actor/session/img-1.png").await.unwrap(),
        b"\x89PNG bytes"
    );
    assert!(store.put("../escape.png", b"x").await.is_err());
}
