//! The loop's spans carry the gen_ai attributes the exporter sends:
//! `chat` per model call (model, token usage, finish reason) and
//! `execute_tool` per tool call (tool name, call id).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use crate::scripted::{ScriptedModel, Step};
use serde_json::json;
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

use crate::support::{Harness, Options};

type Fields = BTreeMap<String, String>;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, Fields)>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().into(),
            format!("{value:?}").trim_matches('"').into(),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut f = Fields::new();
        attrs.record(&mut Visitor(&mut f));
        ctx.span(id).unwrap().extensions_mut().insert(f);
    }
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = ctx.span(id).unwrap().extensions_mut().get_mut::<Fields>() {
            values.record(&mut Visitor(f));
        }
    }
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span
            .extensions()
            .get::<Fields>()
            .cloned()
            .unwrap_or_default();
        self.0.lock().unwrap().push((span.name().into(), fields));
    }
}

#[tokio::test]
async fn chat_and_execute_tool_spans_carry_gen_ai_attributes() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let model = Arc::new(ScriptedModel::new([
        Step::tool("check_balance", json!({})),
        Step::text("done"),
    ]));
    let h = Harness::new(model, Options::default());
    h.turn("s1", "balance?").await.0.unwrap();

    let spans = capture.0.lock().unwrap().clone();
    let chats: Vec<_> = spans.iter().filter(|(n, _)| n == "chat").collect();
    assert_eq!(chats.len(), 2);
    let first = &chats[0].1;
    assert_eq!(first["gen_ai.operation.name"], "chat");
    assert_eq!(first["gen_ai.request.model"], "scripted");
    assert_eq!(first["gen_ai.response.finish_reasons"], "tool_use");
    assert!(first["gen_ai.usage.input_tokens"].parse::<u32>().unwrap() > 0);
    assert!(first["gen_ai.usage.output_tokens"].parse::<u32>().unwrap() > 0);
    assert_eq!(chats[1].1["gen_ai.response.finish_reasons"], "end_turn");

    let (_, tool) = spans
        .iter()
        .find(|(n, _)| n == "execute_tool")
        .expect("an execute_tool span");
    assert_eq!(tool["gen_ai.operation.name"], "execute_tool");
    assert_eq!(tool["gen_ai.tool.name"], "check_balance");
    assert_eq!(tool["gen_ai.tool.call.id"], "call-check_balance");
}
