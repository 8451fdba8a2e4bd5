//! Verifying an Amazon Cognito user pool token.
//!
//! Cognito signs its ID and access tokens with RS256 using one of the pool's
//! keys, published as a JWKS at `{issuer}/.well-known/jwks.json`, where the
//! issuer is `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`. A
//! token is good for this API when, in this order:
//!
//! 1. its header names `RS256` and a key id (`kid`) the pool publishes;
//! 2. its signature verifies with that key (`jsonwebtoken` does the crypto);
//! 3. `iss` is this pool (a token from another pool, even one signed by a
//!    key the same JWKS held, is refused);
//! 4. `token_use` is `id` with `aud` = our app client, or `access` with
//!    `client_id` = our app client (the two token kinds name the client in
//!    different claims; any other client of the pool is refused);
//! 5. `exp` is in the future (the clock is passed in; no leeway: Cognito
//!    and Lambda both run on synchronised clocks).
//!
//! The user is the token's `sub`, Cognito's stable, never-reassigned id.
//! Nothing here logs or returns the token.

use serde::Deserialize;

/// What a token must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`.
    pub issuer: String,
    /// The browser app client's id.
    pub client_id: String,
}

impl Expected {
    /// The issuer of a user pool in a region.
    pub fn cognito(region: &str, user_pool_id: &str, client_id: &str) -> Self {
        Self {
            issuer: format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"),
            client_id: client_id.to_owned(),
        }
    }

    /// Where the pool publishes its signing keys.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }
}

/// Which Cognito token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Id,
    Access,
}

impl TokenUse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Access => "access",
        }
    }
}

/// A verified user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Cognito `sub`.
    pub sub: String,
    pub token_use: TokenUse,
}

/// Why a token was refused (logged; the client only sees the refusal).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    #[error("no token in the request")]
    Missing,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token is not signed with RS256")]
    WrongAlgorithm,
    #[error("token header has no key id")]
    NoKeyId,
    #[error("token is signed by a key the user pool does not publish")]
    UnknownKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token was issued by {0}, not this user pool")]
    WrongIssuer(String),
    #[error("token_use {0:?} is neither id nor access")]
    WrongTokenUse(String),
    #[error("token was issued to another app client")]
    WrongClient,
    #[error("token expired at {expired_at} (now {now})")]
    Expired { expired_at: u64, now: u64 },
    #[error("token has no subject")]
    NoSubject,
    #[error("the user pool's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// The claims we read. Others (`cognito:username`, `email`, `scope`...) are
/// ignored; a missing one here fails decoding ([`Rejection::Malformed`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub exp: u64,
    pub token_use: String,
    /// ID tokens: the app client id.
    #[serde(default)]
    pub aud: Option<String>,
    /// Access tokens: the app client id.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// Checks decoded, signature-verified claims (steps 3-5 above). Pure.
pub fn check_claims(claims: &Claims, expected: &Expected, now: u64) -> Result<User, Rejection> {
    if claims.iss != expected.issuer {
        return Err(Rejection::WrongIssuer(claims.iss.clone()));
    }
    let (token_use, client) = match claims.token_use.as_str() {
        "id" => (TokenUse::Id, claims.aud.as_deref()),
        "access" => (TokenUse::Access, claims.client_id.as_deref()),
        other => return Err(Rejection::WrongTokenUse(other.to_owned())),
    };
    if client != Some(expected.client_id.as_str()) {
        return Err(Rejection::WrongClient);
    }
    if now >= claims.exp {
        return Err(Rejection::Expired {
            expired_at: claims.exp,
            now,
        });
    }
    if claims.sub.trim().is_empty() {
        return Err(Rejection::NoSubject);
    }
    Ok(User {
        sub: claims.sub.clone(),
        token_use,
    })
}

/// The key id of an RS256 token (step 1), before any key is fetched.
pub fn key_id(token: &str) -> Result<String, Rejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(Rejection::WrongAlgorithm);
    }
    header.kid.ok_or(Rejection::NoKeyId)
}

/// Verifies the signature with `key` (step 2) and returns the claims.
/// Claim checks are [`check_claims`]'s, with the caller's clock.
pub fn verified_claims(token: &str, key: &jsonwebtoken::DecodingKey) -> Result<Claims, Rejection> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Rejection::WrongAlgorithm,
            _ => Rejection::Malformed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected::cognito("us-west-2", "us-west-2_Pool1", "client-1")
    }

    fn claims(token_use: &str) -> Claims {
        Claims {
            sub: "0b7e-user".to_owned(),
            iss: "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Pool1".to_owned(),
            exp: 1_000,
            token_use: token_use.to_owned(),
            aud: (token_use == "id").then(|| "client-1".to_owned()),
            client_id: (token_use == "access").then(|| "client-1".to_owned()),
        }
    }

    #[test]
    fn accepts_id_and_access_tokens_of_our_client() {
        for (kind, want) in [("id", TokenUse::Id), ("access", TokenUse::Access)] {
            let user = check_claims(&claims(kind), &expected(), 999).unwrap();
            assert_eq!(user.sub, "0b7e-user");
            assert_eq!(user.token_use, want);
        }
    }

    #[test]
    fn refuses_each_broken_claim() {
        let e = expected();
        let mut c = claims("id");
        c.iss = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Other".to_owned();
        assert!(matches!(
            check_claims(&c, &e, 1),
            Err(Rejection::WrongIssuer(_))
        ));

        let mut c = claims("id");
        c.aud = Some("client-2".to_owned());
        assert_eq!(check_claims(&c, &e, 1), Err(Rejection::WrongClient));

        // An access token names its client in `client_id`, not `aud`.
        let mut c = claims("access");
        c.aud = Some("client-1".to_owned());
        c.client_id = None;
        assert_eq!(check_claims(&c, &e, 1), Err(Rejection::WrongClient));

        let c = claims("refresh");
        assert!(matches!(
            check_claims(&c, &e, 1),
            Err(Rejection::WrongTokenUse(_))
        ));

        assert_eq!(
            check_claims(&claims("id"), &e, 1_000),
            Err(Rejection::Expired {
                expired_at: 1_000,
                now: 1_000
            })
        );

        let mut c = claims("id");
        c.sub = " ".to_owned();
        assert_eq!(check_claims(&c, &e, 1), Err(Rejection::NoSubject));
    }

    #[test]
    fn the_pool_urls() {
        let e = expected();
        assert_eq!(
            e.jwks_url(),
            "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Pool1/.well-known/jwks.json"
        );
    }

    #[test]
    fn headers_without_rs256_or_kid_are_refused_before_any_key_lookup() {
        assert_eq!(key_id("not-a-jwt"), Err(Rejection::Malformed));
        // {"alg":"HS256","kid":"k"} . {} . sig
        assert_eq!(
            key_id("eyJhbGciOiJIUzI1NiIsImtpZCI6ImsifQ.e30.c2ln"),
            Err(Rejection::WrongAlgorithm)
        );
        // {"alg":"RS256"} . {} . sig
        assert_eq!(
            key_id("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
            Err(Rejection::NoKeyId)
        );
        // {"alg":"RS256","kid":"k"}
        assert_eq!(
            key_id("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln"),
            Ok("k".to_owned())
        );
    }
}
