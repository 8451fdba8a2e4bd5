//! Secrets Manager lookups against the local stack's moto.

use plumbing::secrets::{ExposeSecret as _, Secret};

#[tokio::test]
async fn a_secret_is_read_by_arn_and_a_missing_one_is_named_without_a_value() {
    let stack = testkit::Stack::load().expect("this test needs the local stack (moto)");
    let aws = stack.aws_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let created = sm
        .create_secret()
        .name(format!("plumbing-test-{}", std::process::id()))
        .secret_string("  s3cr3t-value\n")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    assert_eq!(
        plumbing::secrets::secret_string(&aws, arn)
            .await
            .unwrap()
            .expose_secret(),
        "s3cr3t-value",
        "trimmed"
    );
    let by_arn = Secret::Arn(arn.to_owned()).resolve(&aws).await.unwrap();
    assert_eq!(by_arn.expose_secret(), "s3cr3t-value");
    assert!(!format!("{by_arn:?}").contains("s3cr3t"));

    let missing = format!("{arn}-missing");
    let e = plumbing::secrets::secret_string(&aws, &missing)
        .await
        .unwrap_err();
    assert_eq!(e.arn, missing);
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
}
