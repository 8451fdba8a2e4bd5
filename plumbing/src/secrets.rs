//! Secret settings. A secret is held as a [`SecretString`] (the maintained
//! `secrecy` crate: `Debug` prints `[REDACTED]`, the memory is zeroized on
//! drop, and the value is reached only through [`ExposeSecret`], so every
//! place that reads it is greppable). A setting gives it by value (local) or,
//! in AWS, as a Secrets Manager ARN ([`Secret`]).
//!
//! With the `aws` feature, a setting given as `*_SECRET_ARN` is read once at
//! start-up (`GetSecretValue`, the secret's string; [`Secret::resolve`],
//! [`secret_string`]). The value is never logged; the error names the ARN and
//! the service's answer, never the value.

pub use secrecy::{ExposeSecret, SecretString};

/// A secret setting: the value itself, or the Secrets Manager ARN holding it
/// (resolved at start-up). `Debug` shows the ARN, never a value.
#[derive(Clone, Debug)]
pub enum Secret {
    Value(SecretString),
    Arn(String),
}

#[cfg(feature = "aws")]
#[derive(Debug, thiserror::Error)]
#[error("reading secret {arn}: {cause}")]
pub struct SecretError {
    pub arn: String,
    pub cause: String,
}

#[cfg(feature = "aws")]
impl Secret {
    /// The value: given directly, or read once from Secrets Manager.
    pub async fn resolve(&self, aws: &aws_config::SdkConfig) -> Result<SecretString, SecretError> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Arn(arn) => secret_string(aws, arn).await,
        }
    }
}

/// The string value of the secret `arn`, trimmed; an empty or binary secret
/// is an error.
#[cfg(feature = "aws")]
pub async fn secret_string(
    aws: &aws_config::SdkConfig,
    arn: &str,
) -> Result<SecretString, SecretError> {
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
        .map(SecretString::from)
        .ok_or_else(|| err("the secret has no string value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_an_arn_but_never_a_value() {
        let value = Secret::Value(SecretString::from("s3cr3t-value"));
        let shown = format!("{value:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        let arn = Secret::Arn("arn:aws:secretsmanager:us-east-1:1:secret:x".into());
        assert!(format!("{arn:?}").contains("arn:aws:secretsmanager"));
        let Secret::Value(v) = value else {
            unreachable!()
        };
        assert_eq!(v.expose_secret(), "s3cr3t-value");
    }
}
