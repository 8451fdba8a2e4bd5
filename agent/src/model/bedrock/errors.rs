//! Bedrock's errors as [`ModelError`]s: throttling, unavailability and an
//! over-long input recognised by code (any capitalisation) or message, before
//! the stream or inside it. Messages stay the service's own.

use aws_sdk_bedrockruntime::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::error::ConverseStreamOutputError,
};

use crate::model::ModelError;

/// Classifies a service error by its code (any capitalisation) and message.
pub(super) fn classify(code: Option<&str>, message: &str) -> ModelError {
    let code = code.unwrap_or_default().to_ascii_lowercase();
    let lower = message.to_ascii_lowercase();
    if code == "throttlingexception"
        || code == "toomanyrequestsexception"
        || lower.contains("too many requests")
        || lower.contains("rate exceeded")
        || lower.contains("throttl")
    {
        ModelError::Throttled(message.into())
    } else if code == "serviceunavailableexception" || code == "modelnotreadyexception" {
        ModelError::Unavailable(message.into())
    } else if is_context_overflow(&lower) {
        ModelError::ContextOverflow(message.into())
    } else {
        ModelError::Service(message.into())
    }
}

/// Bedrock reports an over-long input as a `ValidationException`; these are
/// the phrasings it and Anthropic use ("Input is too long for requested
/// model", "prompt is too long: 210000 tokens > 200000 maximum", "...exceeds
/// the context window...").
fn is_context_overflow(lower: &str) -> bool {
    lower.contains("too long")
        || lower.contains("context window")
        || lower.contains("context length")
        || (lower.contains("token") && (lower.contains("exceed") || lower.contains("maximum")))
}

pub(super) fn sdk_error<E, R>(e: &SdkError<E, R>) -> ModelError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(ctx) => {
            let err = ctx.err();
            let message = err
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(err).to_string());
            classify(err.code(), &message)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ModelError::Unavailable(DisplayErrorContext(e).to_string())
        }
        _ => ModelError::Service(DisplayErrorContext(e).to_string()),
    }
}

/// An exception event inside the stream (after the HTTP 200).
pub(super) fn stream_error(e: &ConverseStreamOutputError) -> ModelError {
    let message = e
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(e).to_string());
    match e {
        ConverseStreamOutputError::ThrottlingException(_) => ModelError::Throttled(message),
        ConverseStreamOutputError::ServiceUnavailableException(_) => {
            ModelError::Unavailable(message)
        }
        other => classify(other.code(), &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_in_either_spelling_or_by_message() {
        assert!(matches!(
            classify(Some("ThrottlingException"), "x"),
            ModelError::Throttled(_)
        ));
        assert!(matches!(
            classify(Some("throttlingException"), "x"),
            ModelError::Throttled(_)
        ));
        assert!(matches!(
            classify(None, "Too many requests, please wait before trying again."),
            ModelError::Throttled(_)
        ));
        assert!(matches!(
            classify(Some("ServiceUnavailableException"), "x"),
            ModelError::Unavailable(_)
        ));
        assert!(matches!(
            classify(
                Some("ValidationException"),
                "Input is too long for requested model."
            ),
            ModelError::ContextOverflow(_)
        ));
        assert!(matches!(
            classify(
                Some("ValidationException"),
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            ModelError::ContextOverflow(_)
        ));
        let e = classify(
            Some("ValidationException"),
            "The model returned the following errors: bad field",
        );
        assert!(
            matches!(&e, ModelError::Service(m) if m.contains("bad field")),
            "keeps the service's message"
        );
    }
}
