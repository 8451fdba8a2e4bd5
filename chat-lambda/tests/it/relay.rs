//! Relaying the agent's stream to the client: in order, as it arrives,
//! ending the turn on an error or a missing result, and oversized events.

use super::*;

#[tokio::test]
async fn streamed_conversation_is_relayed_in_order_as_it_arrives() {
    let events = vec![
        json!({"type": "text", "delta": "Let me "}),
        json!({"type": "text", "delta": "draw that."}),
        json!({"type": "tool_start", "tool": "generate_image", "id": "t1"}),
        json!({"type": "payment", "amount": "10000", "asset": "USDC", "tx": "0xabc"}),
        json!({"type": "image", "url": "https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=1"}),
        json!({"type": "tool_end", "tool": "generate_image", "id": "t1"}),
    ];
    let mut steps: Vec<Step> = events
        .iter()
        // Each event waits until the client holds everything before it: the
        // relay must post as events arrive, not after the stream ends.
        .map(|e| Step::EventAfterClientHas(e.clone()))
        .collect();
    steps.push(Step::Raw(": keep-alive\n\n".to_owned()));
    steps.push(Step::Event(
        json!({"type": "complete", "output": {"text": "Here is your cat."}}),
    ));
    let fake = FakeAws::start(AgentScript::sse(steps)).await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");

    let outcome = send_message(&h, &fake, "conn-1", &chat("draw a cat", "session-1")).await;
    assert_eq!(outcome, Outcome::Completed);

    let mut want = vec![json!({"type": "processing"})];
    want.extend(events);
    want.push(json!({"type": "complete", "sessionId": "session-1",
                     "response": {"output": {"text": "Here is your cat."}}}));
    assert_eq!(fake.received("conn-1"), want);

    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.arn, RUNTIME_ARN);
    assert_eq!(call.qualifier.as_deref(), Some("DEFAULT"));
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(call.accept.as_deref(), Some("text/event-stream"));
    assert_eq!(
        call.session_id.as_deref(),
        Some(chat_lambda::message::runtime_session_id(USER, "session-1").as_str())
    );
    assert_eq!(call.user_id.as_deref(), Some(USER));
    assert_eq!(call.body, json!({"input": {"prompt": "draw a cat"}}));
}

#[tokio::test]
async fn an_agent_error_event_ends_the_turn() {
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(json!({"type": "text", "delta": "Paying..."})),
        Step::Event(json!({"type": "error", "message": "session budget exceeded"})),
        Step::Event(json!({"type": "text", "delta": "never relayed"})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let outcome = send_message(&h, &fake, "conn-1", &chat("draw", "s")).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        fake.received("conn-1"),
        vec![
            json!({"type": "processing"}),
            json!({"type": "text", "delta": "Paying..."}),
            json!({"type": "error", "message": "session budget exceeded (request id req-1)",
                   "requestId": "req-1"}),
        ]
    );
}

/// No error text a client gets names an ARN or an account id.

#[tokio::test]
async fn a_stream_without_a_result_ends_with_an_error() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "text", "delta": "hm"}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let got = fake.received("c");
    assert_eq!(
        got.last().unwrap()["message"],
        "the agent's stream ended without a result (request id req-1)"
    );
}

#[tokio::test]
async fn an_oversized_image_event_travels_as_its_presigned_url() {
    let base64 = "iVBORw0KGgo".repeat(30_000); // ~330 KB of "PNG"
    let image = json!({
        "type": "image",
        "url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
        "base64": base64,
        "mime": "image/png",
    });
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(image),
        Step::Event(json!({"type": "complete", "output": {
            "text": "done",
            "images": [{"url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
                        "data": format!("data:image/png;base64,{base64}")}]
        }})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("draw", "s")).await,
        Outcome::Completed
    );
    // The fake refuses any post over the real 128 KiB limit (413), so arriving
    // at all proves the size; check the content survived.
    let got = fake.received("c");
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1],
        json!({"type": "image", "url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
               "mime": "image/png", "inlineDataOmitted": true})
    );
    let img = &got[2]["response"]["output"]["images"][0];
    assert_eq!(
        img["url"],
        "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc"
    );
    assert_eq!(img["inlineDataOmitted"], true);
    assert!(
        fake.largest_post() <= MAX_MESSAGE_BYTES && MAX_MESSAGE_BYTES < API_GATEWAY_FRAME_LIMIT
    );
}

#[tokio::test]
async fn an_oversized_text_event_is_replaced_by_a_notice() {
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(json!({"type": "text", "delta": "lorem ipsum ".repeat(20_000)})),
        Step::Event(json!({"type": "complete", "output": {"text": "ok"}})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("write", "s")).await,
        Outcome::Completed
    );
    let got = fake.received("c");
    assert_eq!(got[1]["type"], "notice");
    assert_eq!(got[1]["originalType"], "text");
    assert_eq!(got[2]["type"], "complete");
}
