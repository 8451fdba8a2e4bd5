//! A connection's life: `$connect` and `$disconnect` in the table, the
//! callback endpoint, and a connection that went away mid-turn.

use super::*;

#[tokio::test]
async fn connect_and_disconnect_track_the_connection_with_a_ttl() {
    let moto = moto::Moto::start().await;
    let table = moto.create_connections_table().await;
    let fake = FakeAws::start(AgentScript::default()).await;
    let h = handler(&fake, &moto.endpoint, &table);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&moto.endpoint));
    let key = aws_sdk_dynamodb::types::AttributeValue::S("conn-A=".to_owned());

    let resp = h
        .handle(ws_event("$connect", "conn-A=", Some(USER), None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(KEY_ATTRIBUTE, key.clone())
        .send()
        .await
        .unwrap()
        .item
        .expect("connection stored");
    let expires: i64 = item[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    let connected: i64 = item["connectedAt"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires - connected, CONNECTION_TTL_SECONDS);
    assert_eq!(
        item[USER_ATTRIBUTE].as_s().unwrap(),
        USER,
        "the verified user is recorded"
    );

    let resp = h
        .handle(ws_event("$disconnect", "conn-A=", None, None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(KEY_ATTRIBUTE, key)
        .send()
        .await
        .unwrap()
        .item;
    assert!(item.is_none(), "connection deleted on $disconnect");

    // A table that does not exist refuses the connection instead of pretending.
    let broken = handler(&fake, &moto.endpoint, "no-such-table");
    let resp = broken
        .handle(ws_event("$connect", "conn-B", Some(USER), None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 500);

    // No authorizer context (an API deployed without the authorizer): refused,
    // nothing recorded.
    let resp = h
        .handle(ws_event("$connect", "conn-C", None, None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 403);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            KEY_ATTRIBUTE,
            aws_sdk_dynamodb::types::AttributeValue::S("conn-C".to_owned()),
        )
        .send()
        .await
        .unwrap()
        .item;
    assert!(item.is_none());
}

#[tokio::test]
async fn a_gone_connection_ends_relaying_quietly() {
    let steps = (0..20)
        .map(|i| Step::Event(json!({"type": "text", "delta": format!("{i} ")})))
        .collect();
    let fake = FakeAws::start(AgentScript::sse(steps)).await;
    // The browser closes after it has seen `processing` and two deltas.
    fake.gone_after("conn-g", 3);
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let resp = h
        .handle(ws_event(
            "$default",
            "conn-g",
            Some(USER),
            Some(&chat("hi", "s")),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    assert_eq!(fake.received("conn-g").len(), 3);
    // Exactly one post was refused with 410; nothing was tried after it.
    assert_eq!(fake.posts_refused("conn-g"), 1);
    assert_eq!(
        send_message(&h, &fake, "conn-g", &chat("again", "s")).await,
        Outcome::Gone
    );
    assert_eq!(
        fake.posts_refused("conn-g"),
        2,
        "a gone client stops the turn at `processing`"
    );
}

#[tokio::test]
async fn the_callback_endpoint_defaults_to_the_request_domain_and_stage() {
    // No override: the handler must target https://{domain}/{stage}. That host
    // is not reachable from here, so record what the sink is asked for.
    let fake = FakeAws::start(AgentScript::sse(vec![])).await;
    let aws = sdk_config(&fake.url());
    let sink = Arc::new(RecordingSink::default());
    let h = Handler::new(
        Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&aws),
            "t",
        )),
        sink.clone(),
        Arc::new(AgentCoreRuntime::new(
            aws_sdk_bedrockagentcore::Client::new(&aws),
            RUNTIME_ARN,
            None,
        )),
        None,
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        h.handle(ws_event("$default", "c", Some(USER), Some("{}"))),
    )
    .await
    .expect("bad input handled quickly")
    .unwrap();
    assert_eq!(
        sink.endpoints.lock().unwrap().as_slice(),
        ["https://abc123.execute-api.us-east-1.amazonaws.com/prod".to_owned()]
    );
}

/// A sink that only records the endpoints it was asked to post to.
#[derive(Debug, Default)]
struct RecordingSink {
    endpoints: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl chat_lambda::callback::ClientSink for RecordingSink {
    async fn post(
        &self,
        endpoint: &str,
        _connection_id: &str,
        _data: Vec<u8>,
    ) -> Result<(), chat_lambda::callback::PostError> {
        self.endpoints.lock().unwrap().push(endpoint.to_owned());
        Ok(())
    }
}
