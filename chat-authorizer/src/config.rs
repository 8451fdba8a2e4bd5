//! Configuration from the environment (set by the CDK chat stack).

use std::sync::Arc;

use plumbing::env::{Env, FromEnv, Problems};

use crate::authorize::Authorizer;
use crate::jwks::{HttpJwks, JwksError};
use crate::token::Expected;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `COGNITO_USER_POOL_ID`, e.g. `us-west-2_AbC123`.
    pub user_pool_id: String,
    /// `COGNITO_CLIENT_ID`: the browser app client.
    pub client_id: String,
    /// `AWS_REGION` (set by Lambda): the pool's region.
    pub region: String,
}

impl FromEnv for Config {
    fn read(mut env: Env<'_>) -> Result<Self, Problems> {
        let config = Self {
            user_pool_id: env.required("COGNITO_USER_POOL_ID", "the Cognito user pool"),
            client_id: env.required("COGNITO_CLIENT_ID", "the browser app client"),
            region: env.required("AWS_REGION", "the pool's region"),
        };
        env.finish().map(|()| config)
    }
}

impl Config {
    pub fn expected(&self) -> Expected {
        Expected::cognito(&self.region, &self.user_pool_id, &self.client_id)
    }

    /// The authorizer, fetching keys from the pool's public JWKS.
    pub fn authorizer(&self) -> Result<Authorizer, JwksError> {
        let expected = self.expected();
        let keys = HttpJwks::new(expected.jwks_url())?;
        Ok(Authorizer::new(Arc::new(keys), expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pool_and_client() {
        let env = |k: &str| match k {
            "COGNITO_USER_POOL_ID" => Some("us-west-2_AbC123".to_owned()),
            "COGNITO_CLIENT_ID" => Some("client".to_owned()),
            "AWS_REGION" => Some("us-west-2".to_owned()),
            _ => None,
        };
        let c = Config::from_lookup(env).unwrap();
        assert_eq!(
            c.expected().issuer,
            "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_AbC123"
        );
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(
            err.0,
            [
                "COGNITO_USER_POOL_ID is required (the Cognito user pool)",
                "COGNITO_CLIENT_ID is required (the browser app client)",
                "AWS_REGION is required (the pool's region)",
            ]
        );
    }
}
