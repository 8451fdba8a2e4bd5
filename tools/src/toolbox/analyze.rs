//! `analyze_image`: a vision model looks at an image of this session.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{AnalyzeImageArgs, ToolBox, ToolError, TurnContext};
use crate::ledger;

/// Image formats the vision call accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

/// A vision model's answer could not be had; the message is the service's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VisionError(pub String);

/// What `analyze_image` needs of a model: the agent's model adapters
/// (Bedrock Converse, the offline model) provide it.
#[async_trait]
pub trait Vision: Send + Sync {
    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        question: &str,
    ) -> Result<String, VisionError>;
}

impl ToolBox {
    pub(super) async fn analyze_image(
        &self,
        ctx: &TurnContext,
        args: AnalyzeImageArgs,
    ) -> Result<Value, ToolError> {
        let image = {
            let ledger = ctx.ledger.lock().await;
            let images = ledger::images(&ledger);
            match &args.image_id {
                Some(id) => images
                    .into_iter()
                    .rev()
                    .find(|i| &i.image_id == id)
                    .cloned(),
                None => images.last().map(|i| (*i).clone()),
            }
        };
        let Some(image) = image else {
            return Err(ToolError::Other(match args.image_id {
                Some(id) => format!("no image {id:?} in this conversation"),
                None => "there is no image in this conversation yet".into(),
            }));
        };
        let bytes = self
            .images
            .get(&image.key)
            .await
            .map_err(|e| ToolError::Other(e.to_string()))?;
        let question = args
            .question
            .unwrap_or_else(|| "Describe this image in a few sentences.".into());
        let answer = self
            .vision
            .describe_image(&bytes, ImageFormat::Png, &question)
            .await
            .map_err(|e| ToolError::Other(e.to_string()))?;
        Ok(json!({"image_id": image.image_id, "analysis": answer}))
    }
}
