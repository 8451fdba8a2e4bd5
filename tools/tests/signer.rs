//! The remote signers against local servers that speak the real wire
//! formats, reached through the real SDK clients:
//! - a CDP stand-in for the endpoints `cdp-sdk` calls (account by name,
//!   create, sign typed data, export), which checks the JWTs it receives
//!   (bearer on every request, with the right `uris`, verified with the API
//!   key; `X-Wallet-Auth` on account writes, verified with the wallet key)
//!   and signs with a real key it holds;
//! - a KMS stand-in (`TrentService.GetPublicKey` / `Sign`, JSON 1.1) with a
//!   real secp256k1 key. moto's KMS cannot serve here: it ignores
//!   `MessageType=DIGEST` and hashes the digest again.
//!
//! Every signature is checked by recovering the payer's address.

use std::sync::{Arc, Mutex};

use alloy::{
    primitives::{Address, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use plumbing::secrets::ExposeSecret as _;
use serde_json::{Value, json};
use tools::signer::{
    CdpConfig, CdpExportedSigner, CdpSigner, KmsSigner, PaymentSigner, SignerError,
};
use x402::eip3009::{self, Authorization};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn authorization(from: Address) -> Authorization {
    Authorization {
        from,
        to: Address::repeat_byte(0x70),
        value: U256::from(40_000u64),
        valid_after: U256::ZERO,
        valid_before: U256::from(4_000_000_000u64),
        nonce: Authorization::random_nonce(),
    }
}

fn domain() -> alloy::sol_types::Eip712Domain {
    eip3009::domain("USDC", "2", 84532, x402::network::BASE_SEPOLIA_USDC)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

// ---------------------------------------------------------------------------
// CDP

struct Cdp {
    key: PrivateKeySigner,
    name: String,
    created: Mutex<bool>,
    api_key: ed25519_dalek::VerifyingKey,
    wallet_key: p256::ecdsa::VerifyingKey,
    /// (method, path, bearer verified, wallet auth verified)
    seen: Mutex<Vec<(String, String, bool, bool)>>,
}

struct Credentials {
    config: CdpConfig,
}

/// Fresh CDP credentials: an Ed25519 API key and a P-256 wallet secret, in
/// the formats the CDP portal hands out.
fn credentials(
    base_url: &str,
) -> (
    Credentials,
    ed25519_dalek::VerifyingKey,
    p256::ecdsa::VerifyingKey,
) {
    use p256::pkcs8::EncodePrivateKey;
    let seed: [u8; 32] = rand::random();
    let api = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut api_secret = seed.to_vec();
    api_secret.extend_from_slice(api.verifying_key().as_bytes());
    let wallet = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let wallet_der = wallet.to_pkcs8_der().unwrap();
    (
        Credentials {
            config: CdpConfig {
                api_key_id: "organizations/test/apiKeys/key-1".into(),
                api_key_secret: B64.encode(api_secret).into(),
                wallet_secret: B64.encode(wallet_der.as_bytes()).into(),
                account_name: "x402-agent-test".into(),
                base_url: format!("{base_url}/platform"),
            },
        },
        api.verifying_key(),
        *wallet.verifying_key(),
    )
}

fn jwt_parts(token: &str) -> Option<(Value, Vec<u8>, String)> {
    let mut it = token.split('.');
    let (h, c, s) = (it.next()?, it.next()?, it.next()?);
    let claims: Value = serde_json::from_slice(&B64URL.decode(c).ok()?).ok()?;
    Some((claims, B64URL.decode(s).ok()?, format!("{h}.{c}")))
}

impl Cdp {
    /// Checks the JWTs of one request; records what it saw.
    #[allow(clippy::result_large_err)] // a test server: the rejection is the response
    fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
        let path = uri.path();
        let expected_uri = format!("{method} 127.0.0.1{path}");
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(jwt_parts)
            .is_some_and(|(claims, sig, signed)| {
                use ed25519_dalek::Verifier as _;
                claims["uris"][0] == expected_uri
                    && ed25519_dalek::Signature::from_slice(&sig)
                        .is_ok_and(|s| self.api_key.verify(signed.as_bytes(), &s).is_ok())
            });
        let wallet = headers
            .get("x-wallet-auth")
            .and_then(|v| v.to_str().ok())
            .and_then(jwt_parts)
            .is_some_and(|(claims, sig, signed)| {
                use p256::ecdsa::signature::Verifier as _;
                claims["uris"][0] == expected_uri
                    && p256::ecdsa::Signature::from_slice(&sig)
                        .is_ok_and(|s| self.wallet_key.verify(signed.as_bytes(), &s).is_ok())
            });
        self.seen
            .lock()
            .unwrap()
            .push((method.to_string(), path.to_owned(), bearer, wallet));
        if !bearer {
            return Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({"errorType": "unauthorized", "errorMessage": "bad bearer JWT"})),
            )
                .into_response());
        }
        if *method == Method::POST && !wallet {
            return Err((
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"errorType": "unauthorized", "errorMessage": "X-Wallet-Auth required"}),
                ),
            )
                .into_response());
        }
        Ok(())
    }

    fn account(&self) -> Value {
        json!({"address": self.key.address().to_checksum(None), "name": self.name})
    }
}

async fn by_name(
    State(s): State<Arc<Cdp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = s.check(&method, &uri, &headers) {
        return r;
    }
    if name != s.name || !*s.created.lock().unwrap() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errorType": "not_found", "errorMessage": "account not found"})),
        )
            .into_response();
    }
    Json(s.account()).into_response()
}

async fn create(
    State(s): State<Arc<Cdp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = s.check(&method, &uri, &headers) {
        return r;
    }
    let b: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(b["name"], s.name);
    *s.created.lock().unwrap() = true;
    (StatusCode::CREATED, Json(s.account())).into_response()
}

async fn sign_typed(
    State(s): State<Arc<Cdp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = s.check(&method, &uri, &headers) {
        return r;
    }
    // The custodian sees the fields: it hashes the typed data itself.
    let typed: alloy_dyn_abi::TypedData = serde_json::from_slice(&body).unwrap();
    assert_eq!(typed.primary_type, "TransferWithAuthorization");
    let hash = typed.eip712_signing_hash().unwrap();
    let sig = s.key.sign_hash_sync(&hash).unwrap();
    Json(json!({"signature": sig.to_string()})).into_response()
}

async fn export(
    State(s): State<Arc<Cdp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use rsa::{Oaep, pkcs8::DecodePublicKey};
    if let Err(r) = s.check(&method, &uri, &headers) {
        return r;
    }
    let b: Value = serde_json::from_slice(&body).unwrap();
    let der = B64
        .decode(b["exportEncryptionKey"].as_str().unwrap())
        .unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
    let encrypted = public
        .encrypt(
            &mut rsa::rand_core::OsRng,
            Oaep::new::<sha2::Sha256>(),
            &s.key.to_bytes()[..],
        )
        .unwrap();
    Json(json!({"encryptedPrivateKey": B64.encode(encrypted)})).into_response()
}

async fn cdp_standin() -> (Arc<Cdp>, CdpConfig) {
    // The server's URL is needed for the credentials' config, and the
    // credentials' public keys for the server: bind first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (creds, api_key, wallet_key) = credentials(&base);
    let state = Arc::new(Cdp {
        key: PrivateKeySigner::random(),
        name: creds.config.account_name.clone(),
        created: Mutex::new(false),
        api_key,
        wallet_key,
        seen: Mutex::new(Vec::new()),
    });
    let router = Router::new()
        .route("/platform/v2/evm/accounts/by-name/{name}", get(by_name))
        .route("/platform/v2/evm/accounts", post(create))
        .route(
            "/platform/v2/evm/accounts/{address}/sign/typed-data",
            post(sign_typed),
        )
        .route("/platform/v2/evm/accounts/{address}/export", post(export))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (state, creds.config)
}

#[tokio::test]
async fn cdp_signs_typed_data_remotely_and_creates_the_account_if_missing() {
    let (cdp, cfg) = cdp_standin().await;
    let signer = CdpSigner::connect(&cfg).await.unwrap();
    assert_eq!(signer.address(), cdp.key.address());
    assert!(*cdp.created.lock().unwrap(), "created on first use");

    let auth = authorization(signer.address());
    let sig = signer
        .sign_transfer_authorization(&auth, &domain())
        .await
        .unwrap();
    assert_eq!(
        auth.recover_signer(&domain(), &sig.as_bytes()),
        Some(signer.address())
    );

    // A second start finds the account by name instead of creating another.
    let again = CdpSigner::connect(&cfg).await.unwrap();
    assert_eq!(again.address(), signer.address());

    let seen = cdp.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, _, bearer, _)| *bearer), "{seen:?}");
    for (method, path, _, wallet) in &seen {
        if method == "POST" {
            assert!(wallet, "X-Wallet-Auth on {path}");
        }
    }
    assert!(
        seen.iter()
            .any(|(m, p, _, _)| m == "POST" && p.ends_with("/sign/typed-data"))
    );

    // It refuses to sign for another payer.
    let other = authorization(Address::repeat_byte(1));
    assert!(matches!(
        signer.sign_transfer_authorization(&other, &domain()).await,
        Err(SignerError::WrongSigner { .. })
    ));
    assert!(!format!("{cfg:?}").contains(cfg.api_key_secret.expose_secret()));
    assert!(!format!("{cfg:?}").contains(cfg.wallet_secret.expose_secret()));
}

#[tokio::test]
async fn the_exported_key_signs_locally_and_never_shows_in_logs_or_debug() {
    let logs = plumbing::logs::LogBuffer::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (cdp, cfg) = cdp_standin().await;
    let signer = CdpExportedSigner::connect(&cfg).await.unwrap();
    assert_eq!(signer.address(), cdp.key.address());
    let calls_before = cdp.seen.lock().unwrap().len();
    let auth = authorization(signer.address());
    let sig = signer
        .sign_transfer_authorization(&auth, &domain())
        .await
        .unwrap();
    assert_eq!(
        auth.recover_signer(&domain(), &sig.as_bytes()),
        Some(signer.address())
    );
    assert_eq!(
        cdp.seen.lock().unwrap().len(),
        calls_before,
        "signing is local"
    );

    let key_hex = alloy::hex::encode(cdp.key.to_bytes());
    let debug = format!("{signer:?}");
    assert!(
        !debug.contains(&key_hex) && debug.contains("address"),
        "{debug}"
    );
    tracing::info!(?signer, "signer ready");
    let text = logs.contents();
    assert!(text.contains("signer ready"), "the capture works");
    for secret in [
        key_hex.as_str(),
        cfg.api_key_secret.expose_secret(),
        cfg.wallet_secret.expose_secret(),
    ] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
}

// ---------------------------------------------------------------------------
// KMS

/// DER `SubjectPublicKeyInfo` prefix for an uncompressed secp256k1 point.
const SPKI_SECP256K1: &str = "3056301006072a8648ce3d020106052b8104000a034200";

fn der_int(v: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(v.len()).unwrap()];
    out.extend(v);
    out
}

struct Kms {
    key: PrivateKeySigner,
    key_id: String,
}

async fn kms(State(s): State<Arc<Kms>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers["x-amz-target"].to_str().unwrap();
    let b: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(b["KeyId"], s.key_id);
    match target {
        "TrentService.GetPublicKey" => {
            let point = s.key.credential().verifying_key().to_encoded_point(false);
            let mut der = alloy::hex::decode(SPKI_SECP256K1).unwrap();
            der.extend_from_slice(point.as_bytes());
            Json(json!({
                "KeyId": s.key_id,
                "KeySpec": "ECC_SECG_P256K1",
                "KeyUsage": "SIGN_VERIFY",
                "PublicKey": B64.encode(der),
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            }))
            .into_response()
        }
        "TrentService.Sign" => {
            assert_eq!(b["MessageType"], "DIGEST");
            assert_eq!(b["SigningAlgorithm"], "ECDSA_SHA_256");
            let digest = B64.decode(b["Message"].as_str().unwrap()).unwrap();
            let sig = s
                .key
                .sign_hash_sync(&alloy::primitives::B256::from_slice(&digest))
                .unwrap();
            // KMS does not normalise s: hand back the high-s twin half the time.
            let n = U256::from_str_radix(
                "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
                16,
            )
            .unwrap();
            let s_val = if digest[0].is_multiple_of(2) {
                n - sig.s()
            } else {
                sig.s()
            };
            let mut inner = der_int(&sig.r().to_be_bytes::<32>());
            inner.extend(der_int(&s_val.to_be_bytes::<32>()));
            let mut der = vec![0x30, u8::try_from(inner.len()).unwrap()];
            der.extend(inner);
            Json(json!({
                "KeyId": s.key_id,
                "Signature": B64.encode(der),
                "SigningAlgorithm": "ECDSA_SHA_256",
            }))
            .into_response()
        }
        other => (
            StatusCode::BAD_REQUEST,
            Json(json!({"__type": "UnsupportedOperationException", "message": other})),
        )
            .into_response(),
    }
}

#[tokio::test]
async fn kms_signs_digests_and_the_signature_recovers_to_the_key() {
    let state = Arc::new(Kms {
        key: PrivateKeySigner::random(),
        key_id: "arn:aws:kms:us-east-1:000000000000:key/test".into(),
    });
    let url = serve(
        Router::new()
            .route("/", post(kms))
            .with_state(state.clone()),
    )
    .await;
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(url)
        .build();
    let signer = KmsSigner::connect(aws_sdk_kms::Client::from_conf(conf), state.key_id.clone())
        .await
        .unwrap();
    assert_eq!(
        signer.address(),
        state.key.address(),
        "address from the DER public key"
    );
    // Several nonces, so both the low-s and the high-s answers are exercised.
    for _ in 0..8 {
        let auth = authorization(signer.address());
        let sig = signer
            .sign_transfer_authorization(&auth, &domain())
            .await
            .unwrap();
        assert!(sig.normalize_s().is_none(), "low s (EIP-2)");
        assert_eq!(
            auth.recover_signer(&domain(), &sig.as_bytes()),
            Some(signer.address())
        );
    }
}
