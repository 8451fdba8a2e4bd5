use axum::http::{HeaderMap, StatusCode, header};

use super::{
    request::{check_origin, is_json},
    *,
};
use crate::turn::ApprovalAnswer;

fn limits() -> RequestLimits {
    RequestLimits {
        max_prompt_chars: 10,
        max_body_bytes: 200,
        max_session_budget: Usdc::from_atomic(5_000_000),
        default_actor_id: "default".into(),
        port: 8080,
        allowed_origins: vec!["https://chat.example.com".into()],
    }
}

#[test]
fn both_body_shapes_are_accepted() {
    let a = parse_invocation(
        br#"{"input":{"prompt":"hi"},"session_id":"s-1"}"#,
        &limits(),
    )
    .unwrap();
    assert_eq!(
        a,
        Invocation {
            prompt: "hi".into(),
            session_id: Some("s-1".into()),
            session_budget: None,
            approval: None,
        }
    );
    let b = parse_invocation(br#"{"prompt":"hi"}"#, &limits()).unwrap();
    assert_eq!(b.prompt, "hi");
    assert_eq!(b.session_id, None);
}

#[test]
fn budgets_are_exact_decimals_within_the_maximum() {
    let l = limits();
    let p = |b: &str| {
        parse_invocation(
            format!(r#"{{"prompt":"x","session_budget_usdc":{b}}}"#).as_bytes(),
            &l,
        )
    };
    assert_eq!(
        p(r#""2.50""#).unwrap().session_budget,
        Some(Usdc::from_atomic(2_500_000))
    );
    assert_eq!(
        p("0.1").unwrap().session_budget,
        Some(Usdc::from_atomic(100_000))
    );
    assert_eq!(p("0").unwrap().session_budget, Some(Usdc::ZERO));
    assert!(matches!(
        p(r#""5.000001""#),
        Err(ApiError::InvalidBudget(_))
    ));
    assert!(matches!(p("-1"), Err(ApiError::InvalidBudget(_))));
    assert!(matches!(p("1e3"), Err(ApiError::InvalidBudget(_))));
    assert!(matches!(
        p(r#""0.0000001""#),
        Err(ApiError::InvalidBudget(_))
    ));
    assert!(matches!(p("true"), Err(ApiError::InvalidBudget(_))));
    let nested =
        parse_invocation(br#"{"input":{"prompt":"x","session_budget_usdc":"3"}}"#, &l).unwrap();
    assert_eq!(nested.session_budget, Some(Usdc::from_atomic(3_000_000)));
}

#[test]
fn bad_bodies_get_the_right_error() {
    let l = limits();
    let cases: &[(&[u8], StatusCode)] = &[
        (b"not json", StatusCode::BAD_REQUEST),
        (b"[1,2]", StatusCode::BAD_REQUEST),
        (b"{}", StatusCode::BAD_REQUEST),
        (br#"{"input":{"prompt":"  "}}"#, StatusCode::BAD_REQUEST),
        (br#"{"input":{"prompt":7}}"#, StatusCode::BAD_REQUEST),
        (
            br#"{"prompt":"12345678901"}"#,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            br#"{"prompt":"ok","session_id":"../x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"prompt":"ok","session_id":5}"#,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, status) in cases {
        let err = parse_invocation(body, &l).unwrap_err();
        assert_eq!(
            err.status(),
            *status,
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
    let big = format!(r#"{{"prompt":"x","pad":"{}"}}"#, "a".repeat(300));
    assert_eq!(
        parse_invocation(big.as_bytes(), &l).unwrap_err().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Ten characters of multi-byte text are within a ten-character limit.
    assert!(parse_invocation("{\"prompt\":\"éééééééééé\"}".as_bytes(), &l).is_ok());
}

#[test]
fn approvals_are_data_with_or_without_a_prompt() {
    let l = limits();
    let a = parse_invocation(br#"{"approve":{"request_id":"img-1","approved":true}}"#, &l).unwrap();
    assert_eq!(a.prompt, "");
    assert_eq!(
        a.approval,
        Some(ApprovalAnswer {
            request_id: "img-1".into(),
            approved: true
        })
    );
    let ws = parse_invocation(
        br#"{"type":"approve","request_id":"img-2","approved":false,"session_id":"s"}"#,
        &l,
    )
    .unwrap();
    assert_eq!(ws.approval.unwrap().request_id, "img-2");
    assert_eq!(ws.session_id.as_deref(), Some("s"));
    let both = parse_invocation(
        br#"{"input":{"prompt":"and a dog","approve":{"request_id":"img-1","approved":true}}}"#,
        &l,
    )
    .unwrap();
    assert_eq!(both.prompt, "and a dog");
    for bad in [
        br#"{"approve":{"request_id":"img-1"}}"#.as_slice(),
        br#"{"approve":{"request_id":"img-1","approved":"yes"}}"#,
        br#"{"approve":{"request_id":"../x","approved":true}}"#,
        br#"{"approve":{"request_id":"a","approved":true,"amount":"9"}}"#,
        br#"{"type":"approve"}"#,
    ] {
        assert!(
            matches!(parse_invocation(bad, &l), Err(ApiError::InvalidApproval(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn only_the_agents_own_and_configured_origins_are_allowed() {
    let l = limits();
    for ok in [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://LOCALHOST:8080/",
        "https://chat.example.com",
    ] {
        assert!(l.origin_allowed(ok), "{ok}");
    }
    for bad in [
        "http://evil.example",
        "http://127.0.0.1:9090",
        "http://localhost",
        "null",
        "https://chat.example.com.evil.example",
        "http://chat.example.com",
    ] {
        assert!(!l.origin_allowed(bad), "{bad}");
    }
    let mut h = HeaderMap::new();
    assert!(check_origin(&h, &l).is_ok(), "no Origin: not a browser");
    h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(
        check_origin(&h, &l).unwrap_err().status(),
        StatusCode::FORBIDDEN
    );
    let mut h = HeaderMap::new();
    for (ct, ok) in [
        ("application/json", true),
        ("application/json; charset=utf-8", true),
        ("Application/JSON", true),
        ("text/plain", false),
        ("application/x-www-form-urlencoded", false),
        ("multipart/form-data; boundary=x", false),
    ] {
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        assert_eq!(is_json(&h), ok, "{ct}");
    }
}

#[test]
fn health_changes_its_timestamp_only_on_transitions() {
    let now = Arc::new(std::sync::atomic::AtomicU64::new(100));
    let clock = now.clone();
    let h = Health::with_clock(move || clock.load(std::sync::atomic::Ordering::SeqCst));
    let set = |t| now.store(t, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.status(), (PingStatus::Healthy, 100));
    set(200);
    let a = h.busy();
    assert_eq!(h.status(), (PingStatus::HealthyBusy, 200));
    set(300);
    let b = h.busy(); // already busy: no transition
    drop(a);
    assert_eq!(h.status(), (PingStatus::HealthyBusy, 200));
    set(400);
    drop(b);
    assert_eq!(h.status(), (PingStatus::Healthy, 400));
}

#[tokio::test]
async fn session_locks_serialise_one_session_and_are_cleaned_up() {
    let locks = SessionLocks::default();
    let g1 = locks.lock("a", "s").await;
    // Another session is not blocked.
    let g2 = locks.lock("a", "t").await;
    assert_eq!(locks.len(), 2);
    // The same session waits until the first guard is gone.
    let mut waiter = Box::pin(locks.lock("a", "s"));
    assert!(futures::poll!(&mut waiter).is_pending());
    drop(g1);
    let g3 = waiter.await;
    drop((g2, g3));
    assert_eq!(locks.len(), 0);
}

#[tokio::test]
async fn two_spellings_of_one_stored_session_share_its_lock() {
    use crate::session::ids::storage_id;
    let locks = SessionLocks::default();
    // `user:42.x` is stored under its digest; a client may send that
    // digest itself as a (valid) session id and reach the same store.
    let (spelled, stored) = ("user:42.x", storage_id("user:42.x"));
    assert_ne!(spelled, stored);
    let g1 = locks.lock("a", spelled).await;
    let mut waiter = Box::pin(locks.lock("a", &stored));
    assert!(
        futures::poll!(&mut waiter).is_pending(),
        "a second spelling must wait for the turn of the first"
    );
    assert_eq!(locks.len(), 1);
    drop(g1);
    drop(waiter.await);
    assert_eq!(locks.len(), 0);
}
