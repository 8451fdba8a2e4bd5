//! The authorizer's request and response (API Gateway's Lambda REQUEST
//! authorizer format, as WebSocket APIs send it for `$connect`).
//!
//! In: `{"type": "REQUEST", "methodArn": "arn:aws:execute-api:{region}:{account}:{api}/{stage}/$connect",
//! "queryStringParameters": {"token": "<Cognito JWT>"}, "headers": {...}, "requestContext": {...}}`.
//! The token travels in the query string because browsers cannot set headers
//! on a WebSocket handshake (`new WebSocket(url)`); it is never logged.
//!
//! Out: an IAM policy. Allow: `execute-api:Invoke` on exactly `methodArn`,
//! `principalId` = the user's `sub`, and `context` = `{"userId": sub}`, which
//! API Gateway hands to the chat Lambda as `requestContext.authorizer.userId`.
//! Deny: the same action denied; API Gateway answers the handshake with 403.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::jwks::KeySource;
use crate::token::{self, Expected, Rejection, User};

/// Query string parameter that carries the token.
pub const TOKEN_PARAM: &str = "token";
/// Context key holding the user id (read by chat-lambda).
pub const USER_ID_CONTEXT_KEY: &str = "userId";
/// `principalId` of a refused request.
pub const ANONYMOUS: &str = "anonymous";

/// The fields of the authorizer event we read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    pub method_arn: String,
    #[serde(default)]
    pub query_string_parameters: Option<HashMap<String, String>>,
}

impl ConnectRequest {
    fn token(&self) -> Option<&str> {
        self.query_string_parameters
            .as_ref()?
            .get(TOKEN_PARAM)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: PolicyDocument,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: String,
    pub statement: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub action: String,
    pub effect: String,
    pub resource: String,
}

impl AuthorizerResponse {
    fn policy(principal_id: &str, effect: &str, method_arn: &str) -> Self {
        Self {
            principal_id: principal_id.to_owned(),
            policy_document: PolicyDocument {
                version: "2012-10-17".to_owned(),
                statement: vec![Statement {
                    action: "execute-api:Invoke".to_owned(),
                    effect: effect.to_owned(),
                    resource: method_arn.to_owned(),
                }],
            },
            context: None,
        }
    }

    pub fn allow(user: &User, method_arn: &str) -> Self {
        Self {
            context: Some(HashMap::from([(
                USER_ID_CONTEXT_KEY.to_owned(),
                user.sub.clone(),
            )])),
            ..Self::policy(&user.sub, "Allow", method_arn)
        }
    }

    pub fn deny(method_arn: &str) -> Self {
        Self::policy(ANONYMOUS, "Deny", method_arn)
    }

    pub fn is_allowed(&self) -> bool {
        self.policy_document
            .statement
            .iter()
            .all(|s| s.effect == "Allow")
    }

    /// The user id an allowed connection carries.
    pub fn user_id(&self) -> Option<&str> {
        self.context
            .as_ref()?
            .get(USER_ID_CONTEXT_KEY)
            .map(String::as_str)
    }
}

/// Verifies `$connect` tokens against one user pool and app client.
pub struct Authorizer {
    keys: Arc<dyn KeySource>,
    expected: Expected,
}

impl Authorizer {
    pub fn new(keys: Arc<dyn KeySource>, expected: Expected) -> Self {
        Self { keys, expected }
    }

    /// The policy for one `$connect`; `now` in epoch seconds.
    pub async fn authorize(&self, request: &ConnectRequest, now: u64) -> AuthorizerResponse {
        match self.verify(request.token(), now).await {
            Ok(user) => {
                tracing::info!(
                    user = %user.sub,
                    token_use = user.token_use.as_str(),
                    "connect allowed"
                );
                AuthorizerResponse::allow(&user, &request.method_arn)
            }
            Err(rejection) => {
                tracing::warn!(reason = %rejection, "connect denied");
                AuthorizerResponse::deny(&request.method_arn)
            }
        }
    }

    /// Steps 1-5 of [`crate::token`].
    pub async fn verify(&self, token: Option<&str>, now: u64) -> Result<User, Rejection> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Rejection::Missing)?;
        let kid = token::key_id(token)?;
        let key = self
            .keys
            .key(&kid)
            .await
            .map_err(|e| Rejection::KeysUnavailable(e.to_string()))?
            .ok_or(Rejection::UnknownKey)?;
        let claims = token::verified_claims(token, &key)?;
        token::check_claims(&claims, &self.expected, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_of_allow_and_deny() {
        let arn = "arn:aws:execute-api:us-west-2:123456789012:abc/prod/$connect";
        let user = User {
            sub: "u-1".to_owned(),
            token_use: token::TokenUse::Id,
        };
        let allow = serde_json::to_value(AuthorizerResponse::allow(&user, arn)).unwrap();
        assert_eq!(
            allow,
            serde_json::json!({
                "principalId": "u-1",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}
                ]},
                "context": {"userId": "u-1"}
            })
        );
        let deny = AuthorizerResponse::deny(arn);
        assert!(!deny.is_allowed());
        assert_eq!(deny.user_id(), None);
        assert_eq!(
            serde_json::to_value(&deny).unwrap()["policyDocument"]["Statement"][0]["Effect"],
            "Deny"
        );
    }

    #[test]
    fn the_token_comes_from_the_query_string_only() {
        let req: ConnectRequest = serde_json::from_value(serde_json::json!({
            "type": "REQUEST",
            "methodArn": "arn",
            "headers": {"token": "from-a-header"},
            "queryStringParameters": {"token": "from-the-query"}
        }))
        .unwrap();
        assert_eq!(req.token(), Some("from-the-query"));
        let none: ConnectRequest =
            serde_json::from_value(serde_json::json!({"methodArn": "arn"})).unwrap();
        assert_eq!(none.token(), None);
    }
}
