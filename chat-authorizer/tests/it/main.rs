//! The authorizer against a local stand-in for Cognito's JWKS endpoint
//! (`GET /{pool}/.well-known/jwks.json`, the real document format), reached
//! through the real HTTP key source. Keys are generated here; tokens are
//! signed with them exactly as Cognito signs (RS256, `kid` in the header).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_authorizer::authorize::{ANONYMOUS, TOKEN_PARAM};
use chat_authorizer::jwks::HttpJwks;
use chat_authorizer::token::{Expected, Rejection};
use chat_authorizer::{Authorizer, AuthorizerResponse, ConnectRequest};
use jsonwebtoken::{EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

const POOL: &str = "us-west-2_TestPool";
const CLIENT: &str = "chat-web-client";
const METHOD_ARN: &str = "arn:aws:execute-api:us-west-2:123456789012:abc123/prod/$connect";
const NOW: u64 = 1_800_000_000;

struct Key {
    kid: String,
    private: rsa::RsaPrivateKey,
}

impl Key {
    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "alg": "RS256", "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            "kid": self.kid, "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "use": "sig"
        })
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this key but names `kid` in the header.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let der = self.private.to_pkcs1_der().unwrap();
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap()
    }
}

/// Two keys per test binary: RSA generation is slow in debug builds. 1024
/// bits (Cognito's are 2048): nothing checked here depends on the size, and
/// generation is several times faster.
fn keys() -> &'static (Key, Key) {
    static KEYS: OnceLock<(Key, Key)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let make = |kid: &str| Key {
            kid: kid.to_owned(),
            private: rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap(),
        };
        (make("pool-key-1"), make("attacker-key"))
    })
}

/// The JWKS stand-in: serves the pool key (and counts fetches).
struct Jwks {
    url: String,
    base: String,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn jwks() -> Jwks {
    let body = json!({"keys": [keys().0.jwk()]});
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        &format!("/{POOL}/.well-known/jwks.json"),
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}/{POOL}");
    Jwks {
        url: format!("{base}/.well-known/jwks.json"),
        base,
        fetches,
        server,
    }
}

fn authorizer(jwks: &Jwks) -> Authorizer {
    let expected = Expected {
        issuer: jwks.base.clone(),
        client_id: CLIENT.to_owned(),
    };
    assert_eq!(expected.jwks_url(), jwks.url);
    Authorizer::new(Arc::new(HttpJwks::new(&jwks.url).unwrap()), expected)
}

fn id_claims(jwks: &Jwks) -> Value {
    json!({
        "sub": "5f1c1a7e-user-a", "iss": jwks.base, "aud": CLIENT, "token_use": "id",
        "exp": NOW + 3600, "iat": NOW - 10, "auth_time": NOW - 10,
        "cognito:username": "alice", "email": "alice@example.com"
    })
}

fn connect(token: Option<&str>) -> ConnectRequest {
    let mut event = json!({
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {"Sec-WebSocket-Version": "13"},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c1="}
    });
    if let Some(t) = token {
        event["queryStringParameters"] = json!({ TOKEN_PARAM: t });
    }
    serde_json::from_value(event).unwrap()
}

#[tokio::test]
async fn a_valid_id_or_access_token_connects_as_its_user() {
    let jwks = jwks().await;
    let auth = authorizer(&jwks);
    let token = keys().0.sign(&id_claims(&jwks));
    let response = auth.authorize(&connect(Some(&token)), NOW).await;
    assert!(response.is_allowed());
    assert_eq!(response.user_id(), Some("5f1c1a7e-user-a"));
    assert_eq!(response.principal_id, "5f1c1a7e-user-a");
    assert_eq!(
        response.policy_document.statement[0].resource, METHOD_ARN,
        "the policy covers this $connect only"
    );

    let access = keys().0.sign(&json!({
        "sub": "5f1c1a7e-user-b", "iss": jwks.base, "client_id": CLIENT,
        "token_use": "access", "scope": "openid", "exp": NOW + 60
    }));
    let response = auth.authorize(&connect(Some(&access)), NOW).await;
    assert_eq!(response.user_id(), Some("5f1c1a7e-user-b"));
    // Keys are cached: one fetch served both.
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_broken_token_is_denied_with_its_reason() {
    let jwks = jwks().await;
    let auth = authorizer(&jwks);
    let (pool, attacker) = keys();
    let with = |patch: Value| {
        let mut c = id_claims(&jwks);
        c.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        c
    };
    let valid = pool.sign(&id_claims(&jwks));
    // Same header and signature, payload swapped for another user's.
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with(json!({"sub": "someone-else"}))).unwrap());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let other_pool = format!(
        "https://cognito-idp.us-west-2.amazonaws.com/{}",
        "us-west-2_Other"
    );
    let cases: Vec<(&str, Option<String>, Rejection)> = vec![
        ("missing", None, Rejection::Missing),
        ("empty", Some(String::new()), Rejection::Missing),
        (
            "garbage",
            Some("not.a.jwt".to_owned()),
            Rejection::Malformed,
        ),
        (
            "expired",
            Some(pool.sign(&with(json!({"exp": NOW - 1})))),
            Rejection::Expired {
                expired_at: NOW - 1,
                now: NOW,
            },
        ),
        (
            "expires now",
            Some(pool.sign(&with(json!({"exp": NOW})))),
            Rejection::Expired {
                expired_at: NOW,
                now: NOW,
            },
        ),
        (
            "wrong issuer",
            Some(pool.sign(&with(json!({"iss": other_pool})))),
            Rejection::WrongIssuer(other_pool.clone()),
        ),
        (
            "wrong client",
            Some(pool.sign(&with(json!({"aud": "another-client"})))),
            Rejection::WrongClient,
        ),
        (
            "refresh-like token_use",
            Some(pool.sign(&with(json!({"token_use": "refresh"})))),
            Rejection::WrongTokenUse("refresh".to_owned()),
        ),
        ("tampered payload", Some(tampered), Rejection::BadSignature),
        (
            "signed by another key under the pool's kid",
            Some(attacker.sign_as(&pool.kid, &id_claims(&jwks))),
            Rejection::BadSignature,
        ),
        (
            "signed by a key the pool does not publish",
            Some(attacker.sign(&id_claims(&jwks))),
            Rejection::UnknownKey,
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(
            auth.verify(token.as_deref(), NOW).await,
            Err(want),
            "{name}"
        );
        let response = auth.authorize(&connect(token.as_deref()), NOW).await;
        assert!(!response.is_allowed(), "{name}");
        assert_eq!(response.principal_id, ANONYMOUS, "{name}");
        assert_eq!(response.user_id(), None, "{name}");
    }
    // Unknown key ids refetch the JWKS at most once per interval.
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_denies() {
    let jwks = jwks().await;
    let token = keys().0.sign(&id_claims(&jwks));
    let expected = Expected {
        issuer: jwks.base.clone(),
        client_id: CLIENT.to_owned(),
    };
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", l.local_addr().unwrap())
    };
    let auth = Authorizer::new(Arc::new(HttpJwks::new(dead).unwrap()), expected);
    assert!(matches!(
        auth.verify(Some(&token), NOW).await,
        Err(Rejection::KeysUnavailable(_))
    ));
    assert!(
        !auth
            .authorize(&connect(Some(&token)), NOW)
            .await
            .is_allowed()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_reach_the_logs() {
    let jwks = jwks().await;
    let auth = authorizer(&jwks);
    let valid = keys().0.sign(&id_claims(&jwks));
    let expired = keys().0.sign(&json!({
        "sub": "u", "iss": jwks.base, "aud": CLIENT, "token_use": "id", "exp": 1
    }));
    let logs = plumbing::logs::LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut responses: Vec<AuthorizerResponse> = Vec::new();
    for t in [&valid, &expired] {
        responses.push(auth.authorize(&connect(Some(t)), NOW).await);
    }
    drop(_guard);
    assert!(responses[0].is_allowed() && !responses[1].is_allowed());
    let text = logs.contents();
    assert!(
        text.contains("connect allowed") && text.contains("connect denied"),
        "{text}"
    );
    for t in [&valid, &expired] {
        for part in t.split('.') {
            assert!(!text.contains(part), "a token part was logged: {text}");
        }
    }
}
