//! Secrets Manager: a setting given as `*_SECRET_ARN` is read once at start-up
//! (`GetSecretValue`, the secret's string). The value is never logged; the
//! error names the ARN and the service's answer, never the value.

#[derive(Debug, thiserror::Error)]
#[error("reading secret {arn}: {cause}")]
pub struct SecretError {
    pub arn: String,
    pub cause: String,
}

/// The string value of the secret `arn`, trimmed; an empty or binary secret
/// is an error.
pub async fn secret_string(aws: &aws_config::SdkConfig, arn: &str) -> Result<String, SecretError> {
    let err = |cause: String| SecretError {
        arn: arn.to_owned(),
        cause,
    };
    let out = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| err(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    out.secret_string()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| err("the secret has no string value".into()))
}
