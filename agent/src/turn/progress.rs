//! What a turn tells its caller while it runs, and the one way it has to
//! say it.

use tokio::sync::mpsc;
use tools::progress::ToolEvent;

use crate::events::{AgentEvent, ToolStatus};

/// What a turn tells its caller while it runs. There is no terminal variant:
/// a turn ends by returning, and the server sends the last event
/// (`complete` or `error`) from that.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A piece of assistant text.
    Text { delta: String },
    ToolStart {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolEnd {
        id: String,
        name: String,
        status: ToolStatus,
        summary: String,
    },
    /// A quote, refusal, payment or image, shown by a tool.
    Tool(ToolEvent),
}

impl From<Progress> for AgentEvent {
    fn from(p: Progress) -> Self {
        match p {
            Progress::Text { delta } => AgentEvent::Text { delta },
            Progress::ToolStart { id, name, input } => AgentEvent::ToolStart { id, name, input },
            Progress::ToolEnd {
                id,
                name,
                status,
                summary,
            } => AgentEvent::ToolEnd {
                id,
                name,
                status,
                summary,
            },
            Progress::Tool(e) => e.into(),
        }
    }
}

/// The client left: its end of the invocation's event channel is closed.
#[derive(Debug, thiserror::Error)]
#[error("the client left")]
pub struct ClientGone;

/// A turn's way into the invocation's one bounded event channel. It only
/// sends [`Progress`], so a turn cannot end the stream; the server, which
/// holds the channel too, sends the terminal event after the turn returns.
#[derive(Clone, Debug)]
pub struct ProgressSender(mpsc::Sender<AgentEvent>);

impl ProgressSender {
    pub fn new(events: mpsc::Sender<AgentEvent>) -> Self {
        ProgressSender(events)
    }

    /// Waits while the channel is full (a slow client slows the stream, not
    /// the turn's bookkeeping: see [`run_turn`]).
    pub async fn send(&self, p: Progress) -> Result<(), ClientGone> {
        self.0.send(p.into()).await.map_err(|_| ClientGone)
    }
}
