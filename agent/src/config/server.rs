//! Where the agent listens and whom it serves, and where it keeps session
//! state and the per-user records (`AGENT_*`, `SESSIONS_DIR`,
//! `BEDROCK_AGENTCORE_MEMORY_ID`, `AGENT_STATE_*`).

use std::{net::IpAddr, path::PathBuf};

use plumbing::env::Env;

use super::positive;

pub const DEFAULT_PORT: u16 = 8080;
/// Longest chat prompt accepted, in characters (same bound as the WebSocket
/// chat Lambda, so a message it forwards is never refused here).
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 16_000;
/// Largest `/invocations` body or `/ws` message accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// AgentCore Memory actor used when the caller sends no user id.
pub const DEFAULT_ACTOR_ID: &str = "default";

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `AGENT_HOST`, default `127.0.0.1`: a local agent is not reachable
    /// from the network. The Dockerfile sets `0.0.0.0` (AgentCore's contract).
    pub host: IpAddr,
    /// `AGENT_PORT`, default 8080.
    pub port: u16,
    /// `MAX_PROMPT_CHARS`: a longer prompt is refused with 413.
    pub max_prompt_chars: usize,
    /// `MAX_REQUEST_BYTES`: a larger body or WebSocket message is refused with 413.
    pub max_body_bytes: usize,
    /// `AGENT_ACTOR_ID`: the AgentCore Memory actor when the request carries
    /// no `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`.
    pub default_actor_id: String,
    /// `AGENT_WEB_UI` (`1`/`true`), default off: also serve the web chat page
    /// at `/` ([`crate::web`]); not part of the AgentCore contract.
    pub web_ui: bool,
    /// `AGENT_ALLOWED_ORIGINS` (comma-separated, e.g. `http://localhost:5173`):
    /// browser origins allowed besides the agent's own
    /// (`http://127.0.0.1:<port>`, `http://localhost:<port>`). Default none.
    pub allowed_origins: Vec<String>,
}

/// Where session owners and the daily-cap counters live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessConfig {
    /// `AGENT_STATE_TABLE` set: a DynamoDB table shared by all runtime sessions.
    DynamoDb { table: String },
    /// Otherwise: a file under `AGENT_STATE_DIR` (default `.local/agent-state`).
    Local { dir: PathBuf },
}

/// Where session state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionsConfig {
    /// `BEDROCK_AGENTCORE_MEMORY_ID` set: AgentCore Memory events.
    AgentCoreMemory { memory_id: String },
    /// Otherwise: JSON lines under `SESSIONS_DIR` (default `.local/sessions`).
    Local { dir: PathBuf },
}

pub(super) fn server(env: &mut Env) -> ServerConfig {
    let server = ServerConfig {
        host: env.parse_or("AGENT_HOST", IpAddr::from([127, 0, 0, 1])),
        port: env.parse_or("AGENT_PORT", DEFAULT_PORT),
        max_prompt_chars: positive(env, "MAX_PROMPT_CHARS", DEFAULT_MAX_PROMPT_CHARS),
        max_body_bytes: positive(env, "MAX_REQUEST_BYTES", DEFAULT_MAX_BODY_BYTES),
        default_actor_id: env
            .opt("AGENT_ACTOR_ID")
            .unwrap_or_else(|| DEFAULT_ACTOR_ID.into()),
        web_ui: env.flag("AGENT_WEB_UI"),
        allowed_origins: origins(env, "AGENT_ALLOWED_ORIGINS"),
    };
    if !tools::ids::is_valid_client_id(&server.default_actor_id) {
        env.problem("AGENT_ACTOR_ID must be 1-256 letters, digits, '-', '_', '.' or ':'");
    }
    server
}

pub(super) fn sessions(env: &Env) -> SessionsConfig {
    match env.opt("BEDROCK_AGENTCORE_MEMORY_ID") {
        Some(memory_id) => SessionsConfig::AgentCoreMemory { memory_id },
        None => SessionsConfig::Local {
            dir: env
                .opt("SESSIONS_DIR")
                .unwrap_or_else(|| ".local/sessions".into())
                .into(),
        },
    }
}

pub(super) fn access(env: &Env) -> AccessConfig {
    match env.opt("AGENT_STATE_TABLE") {
        Some(table) => AccessConfig::DynamoDb { table },
        None => AccessConfig::Local {
            dir: env
                .opt("AGENT_STATE_DIR")
                .unwrap_or_else(|| ".local/agent-state".into())
                .into(),
        },
    }
}

/// A comma-separated list of browser origins (`scheme://host[:port]`).
fn origins(env: &mut Env, key: &str) -> Vec<String> {
    let Some(list) = env.opt(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let o = o.trim_end_matches('/');
        match reqwest::Url::parse(o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                out.push(u.origin().ascii_serialization());
            }
            _ => env.problem(format!(
                "{key}: {o:?} is not an origin like https://chat.example.com or http://localhost:5173"
            )),
        }
    }
    out
}
