//! What the retrying client got for one request, and the check that a
//! delivered image really loads.

use super::*;

#[derive(Default, Debug)]
pub(crate) struct Outcome {
    pub(crate) delivered: bool,
    pub(crate) attempts: u32,
    pub(crate) receipts: BTreeSet<String>,
    /// The SHA-256 of the PNG behind the delivered image's URL, or what
    /// went wrong fetching it.
    pub(crate) image: Option<Result<[u8; 32], String>>,
}

/// Fetches the first image URL of a delivered answer: "delivered" means a
/// person can load the picture, not that the agent said so.
pub(crate) async fn fetch_png(http: &reqwest::Client, out: &Value) -> Result<[u8; 32], String> {
    let Some(url) = out["output"]["images"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v.as_str())
    else {
        return Err(format!("no image URL in {}", out["output"]["images"]));
    };
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("{url}: {}", r.status()));
    }
    let b = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if !b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(format!("{url}: {} bytes, not a PNG", b.len()));
    }
    Ok(Sha256::digest(&b).into())
}

pub(crate) fn session_id(i: usize) -> String {
    format!("chaos-session-{i:06}-{:024}", 0)
}
