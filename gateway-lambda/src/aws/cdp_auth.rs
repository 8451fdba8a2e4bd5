//! Coinbase's CDP facilitator wants `Authorization: Bearer <JWT>` on every
//! request, the JWT signed with the CDP API key and naming exactly that
//! request in its `uris` claim (`"POST api.cdp.coinbase.com/platform/v2/x402/settle"`),
//! valid for two minutes. `cdp-sdk`'s `generate_jwt` makes it; this adapts it
//! to the facilitator client's [`BearerAuth`] hook. Neither the secret nor a
//! token is ever logged.

use x402::facilitator::BearerAuth;

pub struct CdpJwt {
    key_id: String,
    key_secret: String,
}

impl CdpJwt {
    pub fn new(key_id: String, key_secret: String) -> Self {
        CdpJwt { key_id, key_secret }
    }
}

impl std::fmt::Debug for CdpJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdpJwt")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// JWT lifetime (seconds): CDP's default.
const JWT_TTL_SECS: u64 = 120;

impl BearerAuth for CdpJwt {
    fn bearer(&self, method: &str, host_and_path: &str) -> Result<String, String> {
        let (host, path) = host_and_path
            .find('/')
            .map_or((host_and_path, "/"), |i| host_and_path.split_at(i));
        cdp_sdk::auth::generate_jwt(
            cdp_sdk::auth::JwtOptions::builder()
                .api_key_id(self.key_id.clone())
                .api_key_secret(self.key_secret.clone())
                .request_method(method.to_owned())
                .request_host(host.to_owned())
                .request_path(path.to_owned())
                .expires_in(JWT_TTL_SECS)
                .build(),
        )
        // The error names what is wrong with the key, not the key.
        .map_err(|e| format!("cannot make a CDP JWT: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// A throwaway Ed25519 key in CDP's format: base64 of seed || public key.
    fn test_key() -> String {
        let seed = [7u8; 32];
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut both = seed.to_vec();
        both.extend_from_slice(sk.verifying_key().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(both)
    }

    #[test]
    fn each_request_gets_a_jwt_naming_exactly_that_request() {
        let auth = CdpJwt::new("org/key-id".into(), test_key());
        let token = auth
            .bearer("POST", "api.cdp.coinbase.com/platform/v2/x402/settle")
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWS");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["uris"][0],
            "POST api.cdp.coinbase.com/platform/v2/x402/settle"
        );
        assert_eq!(claims["sub"], "org/key-id");
        let ttl = claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap();
        assert_eq!(ttl, JWT_TTL_SECS);
        // The signature verifies with the key's public half.
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        use ed25519_dalek::Verifier as _;
        sk.verifying_key()
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
            )
            .unwrap();
        // A fresh token per request.
        let other = auth
            .bearer("POST", "api.cdp.coinbase.com/platform/v2/x402/verify")
            .unwrap();
        assert_ne!(token, other);
    }

    #[test]
    fn a_bad_key_is_an_error_that_does_not_echo_it() {
        let auth = CdpJwt::new("id".into(), "not-a-key-SENTINEL".into());
        let e = auth.bearer("POST", "h/p").unwrap_err();
        assert!(!e.contains("SENTINEL"), "{e}");
        assert!(!format!("{auth:?}").contains("SENTINEL"));
    }
}
