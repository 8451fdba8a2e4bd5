//! Session and actor ids: what clients may send, and how they are mapped to
//! names the stores accept.
//!
//! Clients (the AgentCore session header, the chat Lambda, `chat`) send ids
//! of up to 256 characters of letters, digits, `-`, `_`, `.` and `:`. AgentCore
//! Memory accepts narrower ids (`[a-zA-Z0-9][a-zA-Z0-9-_]*`, at most 100 for a
//! session), and file names should be plain too, so [`storage_id`] keeps an id
//! that already fits and otherwise replaces it by a digest: stable (the same
//! client id always finds the same state) and never colliding in practice.

use sha2::{Digest, Sha256};

/// Longest id a client may send (AgentCore's runtimeSessionId maximum).
pub const MAX_CLIENT_ID_CHARS: usize = 256;
/// Longest id kept verbatim in storage (AgentCore Memory's sessionId maximum).
pub const MAX_STORAGE_ID_CHARS: usize = 100;

/// Whether a client-supplied session or actor id is acceptable.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The name under which a (valid) client id is stored.
pub fn storage_id(id: &str) -> String {
    let fits = id.len() <= MAX_STORAGE_ID_CHARS
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        id.to_owned()
    } else {
        format!("h-{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// The one identity of a session, for everything keyed by it (the turn
/// lock, the stores): two client ids that [`storage_id`] maps to one stored
/// session are one session. `'\n'` cannot occur in a storage id, so keys
/// never collide.
pub fn session_key(actor_id: &str, session_id: &str) -> String {
    format!("{}\n{}", storage_id(actor_id), storage_id(session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(is_valid_client_id("chat-0a1b"));
        assert!(is_valid_client_id("user:42.x_y-z"));
        assert!(is_valid_client_id(&"a".repeat(256)));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id(&"a".repeat(257)));
        assert!(!is_valid_client_id("../etc/passwd"));
        assert!(!is_valid_client_id("a b"));
        assert!(!is_valid_client_id("é"));
    }

    #[test]
    fn storage_ids_keep_plain_ids_and_digest_the_rest() {
        assert_eq!(storage_id("abc-123_X"), "abc-123_X");
        let odd = storage_id("user:42.x");
        assert!(odd.starts_with("h-") && odd.len() == 66, "{odd}");
        assert_eq!(odd, storage_id("user:42.x"), "stable");
        assert_ne!(odd, storage_id("user:42.y"));
        assert!(storage_id("-leading").starts_with("h-"));
        assert!(storage_id(&"a".repeat(101)).starts_with("h-"));
        assert_eq!(storage_id(&"a".repeat(100)), "a".repeat(100));
    }

    #[test]
    fn a_session_has_one_key_whatever_its_spelling() {
        let digest = storage_id("user:42.x");
        assert!(is_valid_client_id(&digest), "a client may send the digest");
        assert_eq!(session_key("a", "user:42.x"), session_key("a", &digest));
        assert_ne!(session_key("a", "s"), session_key("b", "s"));
        assert_ne!(session_key("a", "s"), session_key("a", "t"));
    }
}
