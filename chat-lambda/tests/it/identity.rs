//! Who the agent acts for: the user the authorizer verified, never one the
//! client names; budgets and session ids from the client are not trusted.

use super::*;

#[tokio::test]
async fn the_user_comes_from_the_authorizer_and_a_client_sent_one_is_ignored() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let forged = json!({
        "input": {"prompt": "hi", "user_id": "mallory", "actor_id": "mallory"},
        "session_id": "s", "user_id": "mallory", "runtimeUserId": "mallory",
        "requestContext": {"authorizer": {"userId": "mallory"}}
    })
    .to_string();
    let resp = h
        .handle(ws_event("$default", "c", Some(USER), Some(&forged)))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some(USER));
    assert_eq!(
        calls[0].session_id.as_deref(),
        Some(chat_lambda::message::runtime_session_id(USER, "s").as_str())
    );
    assert!(
        !calls[0].raw_body.contains("mallory"),
        "{}",
        calls[0].raw_body
    );
    assert_eq!(fake.received("c").last().unwrap()["type"], "complete");
}

#[tokio::test]
async fn a_message_without_authorizer_context_uses_the_user_recorded_at_connect() {
    let moto = moto::Moto::start().await;
    let table = moto.create_connections_table().await;
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, &moto.endpoint, &table);
    let connect = h
        .handle(ws_event("$connect", "conn-r", Some("user-b"), None))
        .await
        .unwrap();
    assert_eq!(connect.status_code, 200);
    // The message event carries no authorizer context; the body claims another user.
    let body = json!({"input": {"prompt": "hi"}, "session_id": "s", "user_id": USER}).to_string();
    h.handle(ws_event("$default", "conn-r", None, Some(&body)))
        .await
        .unwrap();
    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some("user-b"));

    // A connection nobody recorded (no $connect through the authorizer):
    // refused before the agent is called.
    h.handle(ws_event("$default", "conn-unknown", None, Some(&body)))
        .await
        .unwrap();
    assert_eq!(fake.invocations().len(), 1, "no second invocation");
    let got = fake.received("conn-unknown");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["message"],
        "you are not signed in: reconnect with a fresh token (request id req-1)"
    );
}

#[tokio::test]
async fn a_budget_from_the_client_never_reaches_the_agent() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let bodies = [
        json!({"input": {"prompt": "draw", "session_budget_usdc": "10"}, "session_id": "s"}),
        json!({"input": {"prompt": "draw"}, "session_id": "s", "session_budget_usdc": 10}),
        json!({"type": "approve", "request_id": "req-9", "approved": true, "session_id": "s",
               "session_budget_usdc": "10", "input": {"session_budget_usdc": "10"}}),
    ];
    for body in &bodies {
        send_message(&h, &fake, "c", &body.to_string()).await;
    }
    let calls = fake.invocations();
    assert_eq!(calls.len(), bodies.len());
    for call in &calls {
        assert!(!call.raw_body.contains("budget"), "{}", call.raw_body);
    }
    assert_eq!(calls[0].body, json!({"input": {"prompt": "draw"}}));
    assert_eq!(calls[1].body, json!({"input": {"prompt": "draw"}}));
    // An approval travels as data, for the agent to match against its quote.
    assert_eq!(
        calls[2].body,
        json!({"approve": {"request_id": "req-9", "approved": true}})
    );
}

#[tokio::test]
async fn two_users_with_the_same_client_session_id_get_different_runtime_sessions() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    send_as(&h, &fake, "user-a", "ca", &chat("hi", "shared-session")).await;
    send_as(&h, &fake, "user-b", "cb", &chat("hi", "shared-session")).await;
    send_as(&h, &fake, "user-a", "ca2", &chat("again", "shared-session")).await;
    let calls = fake.invocations();
    let sessions: Vec<_> = calls
        .iter()
        .map(|c| c.session_id.clone().unwrap())
        .collect();
    let users: Vec<_> = calls.iter().map(|c| c.user_id.clone().unwrap()).collect();
    assert_eq!(users, ["user-a", "user-b", "user-a"]);
    assert_ne!(
        sessions[0], sessions[1],
        "another user's session is out of reach"
    );
    assert_eq!(
        sessions[0], sessions[2],
        "a user continues their own session"
    );
    for s in &sessions {
        assert!(!s.contains("shared-session"));
    }
    // Each client sees its own session id in `complete`.
    assert_eq!(
        fake.received("cb").last().unwrap()["sessionId"],
        "shared-session"
    );
}
