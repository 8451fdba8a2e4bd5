//! The tool loop with a scripted model: parallel tools, unknown tools, bad
//! arguments, max turns, throttling mid-stream, context overflow trimming,
//! max_tokens.

use crate::scripted::{ScriptedModel, Step};
use std::{sync::Arc, time::Duration};

use agent::{
    events::{AgentEvent, ToolStatus},
    model::{
        ContentBlock, ImageFormat, Message, Model, ModelError, ModelRequest, ModelResponse, Role,
        StopReason, TextSink, ToolUse, estimate_tokens,
        retry::{Backoff, Retry},
    },
    session::{Record, SessionStore},
    turn::TurnError,
};
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tools::ledger::{LedgerEntry, StoredImage};

use crate::support::{Harness, Options};

fn scripted(steps: impl IntoIterator<Item = Step>) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(steps))
}

/// Tool results of the last message of a request, as (id, status, content).
fn last_results(req: &ModelRequest) -> Vec<(String, String, Value)> {
    let last = req.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    last.content
        .iter()
        .map(|b| match b {
            ContentBlock::ToolResult(r) => {
                let v = serde_json::to_value(r).unwrap();
                (
                    r.tool_use_id.clone(),
                    v["status"].as_str().unwrap().to_owned(),
                    v["content"][0].clone(),
                )
            }
            other => panic!("expected tool results, got {other:?}"),
        })
        .collect()
}

/// Every toolUse sent to the model has its toolResult in the next message.
fn assert_pairs_intact(messages: &[Message]) {
    assert!(
        messages.first().is_some_and(Message::starts_turn),
        "history starts with a user turn"
    );
    for (i, m) in messages.iter().enumerate() {
        for u in m.tool_uses() {
            let next = messages
                .get(i + 1)
                .expect("a toolUse is followed by its results");
            assert!(
                next.content.iter().any(
                    |b| matches!(b, ContentBlock::ToolResult(r) if r.tool_use_id == u.tool_use_id)
                ),
                "toolUse {} lost its toolResult",
                u.tool_use_id
            );
        }
        if i > 0 {
            assert_ne!(messages[i - 1].role, m.role, "roles alternate");
        }
    }
}

/// A model whose vision answers out of order: the answer to "first" waits
/// until "second" has been answered. Both finish only if the two tool calls
/// run concurrently.
struct OutOfOrderVision {
    chat: ScriptedModel,
    second_done: Notify,
}

#[async_trait]
impl Model for OutOfOrderVision {
    fn label(&self) -> String {
        "scripted".into()
    }
    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        self.chat.converse(req, on_text).await
    }
    async fn describe_image(
        &self,
        _: &[u8],
        _: ImageFormat,
        question: &str,
    ) -> Result<String, ModelError> {
        if question == "first" {
            self.second_done.notified().await;
        } else {
            self.second_done.notify_one();
        }
        Ok(format!("answer to {question}"))
    }
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently_and_results_keep_call_order() {
    let model = Arc::new(OutOfOrderVision {
        chat: ScriptedModel::new([
            Step::tools(&[
                ("analyze_image", json!({"question": "first"})),
                ("analyze_image", json!({"question": "second"})),
            ]),
            Step::text("Both analysed."),
        ]),
        second_done: Notify::new(),
    });
    let h = Harness::new(model.clone(), Options::default());
    // An image this session owns.
    std::fs::create_dir_all(h.dir.join("images/s")).unwrap();
    std::fs::write(h.dir.join("images/s/one.png"), b"png").unwrap();
    let entry = LedgerEntry::Stored {
        request_id: "img-1".into(),
        image: StoredImage {
            image_id: "img-1".into(),
            key: "s/one.png".into(),
            url: "file:///one.png".into(),
            prompt: "x".into(),
        },
    };
    h.store
        .append(
            "tester",
            "s1",
            &[Record::Ledger {
                entry: serde_json::to_value(entry).unwrap(),
            }],
            "seed",
        )
        .await
        .unwrap();

    let (out, events) =
        tokio::time::timeout(Duration::from_secs(10), h.turn("s1", "analyze twice"))
            .await
            .expect("the two tool calls must run concurrently (the first waits for the second)");
    assert_eq!(out.unwrap().message.content[0].text, "Both analysed.");

    let results = last_results(&model.chat.requests()[1]);
    assert_eq!(results[0].0, "call-0-analyze_image");
    assert_eq!(results[0].2["json"]["analysis"], "answer to first");
    assert_eq!(results[1].0, "call-1-analyze_image");
    assert_eq!(results[1].2["json"]["analysis"], "answer to second");
    // The second finished first, yet results are in call order.
    let ends: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolEnd { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ends, ["call-1-analyze_image", "call-0-analyze_image"]);
}

#[tokio::test]
async fn an_unknown_tool_is_an_error_result_the_model_can_react_to() {
    let model = scripted([
        Step::tool("teleport", json!({"to": "mars"})),
        Step::dynamic(|req| {
            let results = last_results(req);
            assert_eq!(results[0].1, "error");
            assert!(
                results[0].2["text"]
                    .as_str()
                    .unwrap()
                    .contains("unknown tool \"teleport\"")
            );
            Step::text("I cannot teleport.")
        }),
    ]);
    let h = Harness::new(model.clone(), Options::default());
    let (out, events) = h.turn("s1", "teleport me").await;
    assert_eq!(out.unwrap().message.content[0].text, "I cannot teleport.");
    assert!(events.iter().any(|e| matches!(e, AgentEvent::ToolEnd { status: ToolStatus::Error, name, .. } if name == "teleport")));
    assert_eq!(model.calls(), 2);
    assert_eq!(
        model.remaining(),
        0,
        "the dynamic step ran (its assertions passed)"
    );
}

#[tokio::test]
async fn invalid_arguments_are_refused_before_anything_runs() {
    let model = scripted([
        Step::tools(&[
            ("generate_image", json!({"prompt": 42})),
            (
                "generate_image",
                json!({"prompt": "a cat", "pay_to": "0x000000000000000000000000000000000000dEaD"}),
            ),
            (
                "make_payment",
                json!({"request_id": "img-1", "amount": "5.00"}),
            ),
            ("check_balance", json!({"budget": "100"})),
            ("generate_image", json!({"prompt": "   "})),
        ]),
        Step::text("ok"),
    ]);
    let h = Harness::new(model.clone(), Options::default());
    let (out, _) = h.turn("s1", "do things").await;
    out.unwrap();
    let results = last_results(&model.requests()[1]);
    assert_eq!(results.len(), 5);
    for (i, needle) in [
        "invalid type",
        "unknown field `pay_to`",
        "unknown field `amount`",
        "unknown field `budget`",
        "prompt is required",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(results[i].1, "error", "{i}");
        let text = results[i].2["text"].as_str().unwrap();
        assert!(text.contains("invalid arguments"), "{text}");
        assert!(text.contains(needle), "{i}: {text}");
    }
    assert!(
        h.ledger("s1").await.is_empty(),
        "nothing was recorded, let alone paid"
    );
}

#[tokio::test]
async fn max_turns_ends_with_a_clear_message_and_a_valid_history() {
    let steps = (0..3).map(|_| Step::tool("make_payment", json!({"request_id": "nope"})));
    let model = scripted(steps.chain([Step::text("fresh start")]));
    let mut opts = Options::default();
    opts.settings.max_turns = 3;
    let h = Harness::new(model.clone(), opts);
    let (out, events) = h.turn("s1", "loop forever").await;
    let text = out.unwrap().message.content[0].text.clone();
    assert!(text.contains("stopped after 3 model calls"), "{text}");
    assert_eq!(model.calls(), 3);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Text { delta } if delta.contains("stopped after")))
    );

    // The next turn sends a well-formed history.
    let (out, _) = h.turn("s1", "hello again").await;
    assert_eq!(out.unwrap().message.content[0].text, "fresh start");
    let sent = &model.requests()[3].messages;
    assert_pairs_intact(sent);
    assert_eq!(sent.last().unwrap(), &Message::user_text("hello again"));
}

#[tokio::test]
async fn throttling_mid_stream_is_retried_inside_the_loop() {
    let inner = ScriptedModel::new([
        Step::FailAfter {
            partial: "Here is".into(),
            error: ModelError::Throttled("Too many requests".into()),
        },
        Step::Fail(ModelError::Throttled("ThrottlingException".into())),
        Step::text("Here is the answer."),
    ]);
    let model = Arc::new(Retry::new(
        inner,
        Backoff {
            max_attempts: 5,
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
    ));
    let h = Harness::new(model.clone(), Options::default());
    let (out, _) = h.turn("s1", "hi").await;
    assert_eq!(out.unwrap().message.content[0].text, "Here is the answer.");
    assert_eq!(model.inner().calls(), 3);
}

async fn seed_turn(h: &Harness, session: &str, n: usize, filler: &str) {
    let id = format!("old-{n}");
    let msgs = [
        json!({"role": "user", "content": [{"text": format!("turn {n}: {filler}")}]}),
        json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": id, "name": "check_balance", "input": {}}}]}),
        json!({"role": "user", "content": [{"toolResult": {"toolUseId": id, "content": [{"text": "balance 1.00"}], "status": "success"}}]}),
        json!({"role": "assistant", "content": [{"text": format!("answer {n}")}]}),
    ];
    let records: Vec<Record> = msgs
        .into_iter()
        .map(|message| Record::Message { message })
        .collect();
    h.store
        .append("tester", session, &records, &format!("seed-{n}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn context_overflow_drops_the_oldest_turns_without_splitting_tool_pairs() {
    let filler = "x".repeat(4000);
    // Size the window to fit only the newest old turn plus the prompt.
    let h0 = Harness::new(scripted([]), Options::default());
    for n in 1..=3 {
        seed_turn(&h0, "s1", n, &filler).await;
    }
    let all: Vec<Message> = h0
        .messages("s1")
        .await
        .into_iter()
        .map(|m| serde_json::from_value(m).unwrap())
        .chain([Message::user_text("and now?")])
        .collect();
    let fits = ModelRequest {
        system: agent::model::prompt::system_prompt(
            "0.10".parse().unwrap(),
            "1.00".parse().unwrap(),
        ),
        messages: all[8..].to_vec(),
        tools: tools::toolbox::specs(),
        max_tokens: 1000,
    };
    let limit = estimate_tokens(&fits) + 10;

    let model =
        Arc::new(ScriptedModel::new([Step::text("trimmed answer")]).with_context_limit(limit));
    let h = Harness::in_dir(model.clone(), Options::default(), h0.dir.clone());
    let (out, _) = h.turn("s1", "and now?").await;
    assert_eq!(out.unwrap().message.content[0].text, "trimmed answer");

    let reqs = model.requests();
    assert_eq!(
        reqs.len(),
        3,
        "two overflows (one turn dropped each), then success"
    );
    for r in &reqs {
        assert_pairs_intact(&r.messages);
    }
    assert_eq!(reqs[0].messages.len(), 13);
    assert_eq!(reqs[1].messages.len(), 9);
    assert_eq!(reqs[2].messages.len(), 5);
    assert!(reqs[2].messages[0].text().starts_with("turn 3"));
    // The store keeps everything: 3 old turns + this one.
    assert_eq!(h.messages("s1").await.len(), 14);

    // When even the newest turn does not fit, the turn fails clearly.
    let tiny = Arc::new(ScriptedModel::new([]).with_context_limit(10));
    let h = Harness::in_dir(tiny, Options::default(), h0.dir.clone());
    let (out, _) = h.turn("s1", "again").await;
    assert!(
        matches!(out, Err(TurnError::Model(ModelError::ContextOverflow(_)))),
        "{:?}",
        out.err()
    );
}

#[tokio::test]
async fn max_tokens_keeps_the_text_with_a_notice_and_runs_no_cut_off_tool() {
    let cut = Message {
        role: Role::Assistant,
        content: vec![
            ContentBlock::Text("Let me generate".into()),
            ContentBlock::ToolUse(ToolUse {
                tool_use_id: "t1".into(),
                name: "generate_image".into(),
                input: json!("{\"prompt\": \"a ca"),
            }),
        ],
    };
    let model = scripted([Step::Reply(cut, StopReason::MaxTokens), Step::text("next")]);
    let h = Harness::new(model.clone(), Options::default());
    let (out, events) = h.turn("s1", "draw").await;
    let text = out.unwrap().message.content[0].text.clone();
    assert!(text.starts_with("Let me generate"), "{text}");
    assert!(text.contains("cut short"), "{text}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolStart { .. }))
    );
    assert_eq!(model.calls(), 1);
    // History stays valid for the next turn.
    h.turn("s1", "continue").await.0.unwrap();
    assert_pairs_intact(&model.requests()[1].messages);
}
