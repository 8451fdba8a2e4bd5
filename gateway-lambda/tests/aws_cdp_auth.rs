//! The CDP facilitator's bearer JWT on the wire: `HttpFacilitator::with_auth`
//! sends a fresh `Authorization: Bearer <jwt>` whose `uris` claim names exactly
//! the request it rides on (method, host and path, no scheme or port).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, http::HeaderMap, routing::get};
use base64::Engine as _;
use gateway_lambda::aws::cdp_auth::CdpJwt;
use x402::facilitator::{Facilitator, HttpFacilitator};

fn test_key() -> String {
    let seed = [9u8; 32];
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut both = seed.to_vec();
    both.extend_from_slice(sk.verifying_key().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(both)
}

#[tokio::test]
async fn the_facilitator_client_sends_a_jwt_for_each_request() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/x402/supported",
        get(move |h: HeaderMap| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(
                    h.get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default(),
                );
                Json(serde_json::json!({ "kinds": [] }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let f = HttpFacilitator::new(
        format!("http://127.0.0.1:{port}/x402"),
        Duration::from_secs(5),
    )
    .with_auth(Arc::new(CdpJwt::new("org/key".into(), test_key())));
    f.supported().await.unwrap();
    f.supported().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    // cdp-sdk's Ed25519 JWTs carry no nonce and the signature is
    // deterministic, so two tokens made in the same second are identical;
    // "fresh" here means each is made for its request and currently valid.
    let vk = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key();
    for header in &seen {
        let jwt = header.strip_prefix("Bearer ").expect("a bearer token");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["uris"][0], "GET 127.0.0.1/x402/supported");
        assert_eq!(claims["sub"], "org/key");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (nbf, exp) = (
            claims["nbf"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(
            nbf <= now && now < exp,
            "valid now: nbf {nbf}, exp {exp}, now {now}"
        );
        let sig = ed25519_dalek::Signature::from_slice(&b64.decode(parts[2]).unwrap()).unwrap();
        use ed25519_dalek::Verifier as _;
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("signed by the configured key");
    }
}
