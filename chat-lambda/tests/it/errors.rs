//! What the client is told when something fails: what happened, a request
//! id, no AWS internals; bad input never reaches the agent.

use super::*;

fn assert_no_aws_internals(message: &serde_json::Value) {
    let text = message.to_string();
    assert!(!text.contains("arn:"), "{text}");
    assert!(!text.contains("123456789012"), "{text}");
    assert!(!text.contains("ChatRole"), "{text}");
}

#[tokio::test]
async fn errors_say_what_happened_with_a_request_id_and_no_aws_internals() {
    // What AgentCore really answers when the chat Lambda's role lacks access.
    let denied = "User: arn:aws:sts::123456789012:assumed-role/X402AgentChat-ChatRole/chat \
                  is not authorized to perform: bedrock-agentcore:InvokeAgentRuntime on resource: \
                  arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-AbC123";
    let cases = [
        (
            403,
            "AccessDeniedException",
            denied,
            "the chat service could not invoke the agent",
        ),
        (
            429,
            "ThrottlingException",
            "Rate exceeded for account 123456789012",
            "the agent is busy; try again in a moment",
        ),
        (
            424,
            "RuntimeClientError",
            "container returned 500",
            "the agent failed while answering",
        ),
    ];
    for (status, error_type, message, want) in cases {
        let fake = FakeAws::start(AgentScript::Fail {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        })
        .await;
        let h = handler(&fake, "http://127.0.0.1:9", "unused");
        let resp = h
            .handle(ws_event(
                "$default",
                "c",
                Some(USER),
                Some(&chat("hi", "s")),
            ))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 200);
        let got = fake.received("c");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[1],
            json!({"type": "error", "message": format!("{want} (request id req-1)"),
                   "requestId": "req-1"}),
            "{error_type}"
        );
        assert_no_aws_internals(&got[1]);
        // (The SDK retries throttling itself, so it may have asked more than once.)
        assert!(!fake.invocations().is_empty(), "the agent was called");
    }

    // The agent itself reports an error naming AWS internals mid-stream.
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(json!({
        "type": "error",
        "message": format!("S3 PutObject denied: {denied}")
    }))]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let last = fake.received("c").pop().unwrap();
    assert_eq!(last["message"], "the agent failed (request id req-1)");
    assert_no_aws_internals(&last);

    // The agent is unreachable: the SDK's error names the endpoint and ARN.
    let fake = FakeAws::start(AgentScript::default()).await;
    let aws = sdk_config(&fake.url());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let h = Handler::new(
        Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&aws),
            "t",
        )),
        Arc::new(ApiGatewaySink::new(aws.clone())),
        Arc::new(AgentCoreRuntime::new(
            aws_sdk_bedrockagentcore::Client::new(&sdk_config(&dead)),
            RUNTIME_ARN,
            None,
        )),
        Some(fake.callback_url()),
    );
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let last = fake.received("c").pop().unwrap();
    assert_eq!(
        last["message"],
        "the agent could not be reached (request id req-1)"
    );
    assert_no_aws_internals(&last);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_never_reaches_the_agent() {
    let fake = FakeAws::start(AgentScript::sse(vec![])).await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let cases = [
        ("not json", "message is not valid JSON"),
        (r#"{"session_id":"s"}"#, "`input` must be an object"),
        (
            r#"{"input":{"prompt":""},"session_id":"s"}"#,
            "`input.prompt` must be a non-empty string",
        ),
        (
            r#"{"input":{"prompt":"hi"}}"#,
            "`session_id` must be a non-empty string",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let conn = format!("bad-{i}");
        let resp = h
            .handle(ws_event("$default", &conn, Some(USER), Some(body)))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 200);
        let got = fake.received(&conn);
        assert_eq!(got.len(), 1, "{body}");
        assert_eq!(got[0]["type"], "error");
        assert!(
            got[0]["message"].as_str().unwrap().starts_with(want),
            "{body}: {}",
            got[0]
        );
    }
    assert!(fake.invocations().is_empty());
}
