//! A loopback HTTP proxy that injects faults between two real peers.
//!
//! The chaos suite puts one in front of the official facilitator (errors and
//! timeouts on `/verify` and `/settle`, including "settled on chain but the
//! answer was lost") and one between the agent and the gateway (dropped
//! responses). The peers stay real; only the wire between them misbehaves.
//!
//! Written on hyper directly rather than axum because one fault needs to cut
//! the connection without any HTTP response, which axum's infallible handlers
//! cannot express.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the proxy does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward and relay the answer.
    Pass,
    /// Answer with this status without forwarding.
    Status(u16),
    /// Never answer (the client's timeout fires); nothing is forwarded.
    Hang,
    /// Forward, let the upstream act, then cut the connection without an
    /// answer: the caller cannot know whether the call took effect.
    DropResponse,
    /// Forward after a delay.
    Delay(Duration),
}

impl Fault {
    pub fn label(&self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Status(_) => "status",
            Fault::Hang => "hang",
            Fault::DropResponse => "drop_response",
            Fault::Delay(_) => "delay",
        }
    }
}

/// One request as the proxy received it (body read in full).
pub struct Seen<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a Bytes,
}

impl Seen<'_> {
    /// The AWS SDK's `amz-sdk-request: attempt=N; max=M` header says this is
    /// its last attempt: a failure here is returned to the caller, not
    /// retried away.
    pub fn is_last_sdk_attempt(&self) -> bool {
        let Some(v) = self
            .headers
            .get("amz-sdk-request")
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let field = |name: &str| {
            v.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, n)| n.parse::<u32>().ok())
        };
        matches!((field("attempt"), field("max")), (Some(a), Some(m)) if a >= m)
    }
}

/// Decides the fault for a request.
pub type Decider = Arc<dyn Fn(&Seen<'_>) -> Fault + Send + Sync>;

/// Sees each answer the upstream gave (status, headers, body), including
/// answers that a `DropResponse` then keeps from the client.
pub type Observer = Arc<dyn Fn(&Seen<'_>, u16, &http::HeaderMap, &Bytes) + Send + Sync>;

/// A running proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by fault injection")
    }
}

impl std::error::Error for Cut {}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`
    /// (e.g. `http://127.0.0.1:14021`).
    pub async fn start(upstream: &str, decide: Decider) -> std::io::Result<FaultProxy> {
        FaultProxy::start_observed(upstream, decide, Arc::new(|_, _, _, _| {})).await
    }

    /// [`FaultProxy::start`], with `observe` called on every upstream answer.
    pub async fn start_observed(
        upstream: &str,
        decide: Decider,
        observe: Observer,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client builds");
        let c2 = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, decide, observe, counts, client) = (
                    upstream.clone(),
                    decide.clone(),
                    observe.clone(),
                    c2.clone(),
                    client.clone(),
                );
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (upstream, decide, observe, counts, client) = (
                            upstream.clone(),
                            decide.clone(),
                            observe.clone(),
                            counts.clone(),
                            client.clone(),
                        );
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map_err(|_| Cut)?.to_bytes();
                            let path = parts.uri.path().to_owned();
                            let seen = Seen {
                                method: &parts.method,
                                path: &path,
                                headers: &parts.headers,
                                body: &body,
                            };
                            let fault = decide(&seen);
                            *counts
                                .lock()
                                .expect("counts lock")
                                .entry(format!("{} {path} {}", parts.method, fault.label()))
                                .or_default() += 1;
                            handle(&parts, &body, fault, &upstream, &client, &observe).await
                        }
                    });
                    // An Err from the service makes hyper close the connection
                    // without a response: that is the DropResponse fault.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FaultProxy { addr, counts, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests got each fault, keyed `"METHOD /path fault"`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counts lock").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    parts: &http::request::Parts,
    body: &Bytes,
    fault: Fault,
    upstream: &str,
    client: &reqwest::Client,
    observe: &Observer,
) -> Result<Response<Full<Bytes>>, Cut> {
    match fault {
        Fault::Status(code) => {
            return Ok(Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"error":"injected fault"}"#,
                )))
                .expect("valid response"));
        }
        Fault::Hang => {
            std::future::pending::<Infallible>().await;
            unreachable!()
        }
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::Pass | Fault::DropResponse => {}
    }
    let path_q = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut up = client.request(parts.method.clone(), format!("{upstream}{path_q}"));
    for (k, v) in &parts.headers {
        if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
            up = up.header(k, v);
        }
    }
    let resp = up.body(body.clone()).send().await.map_err(|_| Cut)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map_err(|_| Cut)?;
    let seen = Seen {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        body,
    };
    observe(&seen, status.as_u16(), &headers, &bytes);
    if fault == Fault::DropResponse {
        return Err(Cut);
    }
    let mut out = Response::builder().status(status);
    for (k, v) in &headers {
        if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
            out = out.header(k, v);
        }
    }
    Ok(out.body(Full::new(bytes)).expect("valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny upstream that counts requests, so tests can tell whether a
    /// fault forwarded or not.
    async fn upstream() -> (String, Arc<Mutex<u64>>) {
        let hits = Arc::new(Mutex::new(0u64));
        let h2 = hits.clone();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let h = h2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_r: Request<Incoming>| {
                        *h.lock().unwrap() += 1;
                        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("up")))) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says() {
        let (up, hits) = upstream().await;
        let decide: Decider = Arc::new(|s| match s.path {
            "/status" => Fault::Status(503),
            "/hang" => Fault::Hang,
            "/drop" => Fault::DropResponse,
            _ => Fault::Pass,
        });
        let p = FaultProxy::start(&up, decide).await.unwrap();
        let c = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();

        let r = c.get(format!("{}/ok", p.url())).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "up");
        assert_eq!(*hits.lock().unwrap(), 1);

        let r = c.get(format!("{}/status", p.url())).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(*hits.lock().unwrap(), 1, "status fault does not forward");

        let e = c.get(format!("{}/hang", p.url())).send().await.unwrap_err();
        assert!(e.is_timeout());
        assert_eq!(*hits.lock().unwrap(), 1, "hang does not forward");

        let e = c.get(format!("{}/drop", p.url())).send().await.unwrap_err();
        assert!(!e.is_timeout(), "a cut connection, not a timeout: {e}");
        assert_eq!(*hits.lock().unwrap(), 2, "drop forwards, then cuts");

        let counts = p.counts();
        assert_eq!(counts["GET /drop drop_response"], 1);
        assert_eq!(counts["GET /ok pass"], 1);
    }

    #[test]
    fn the_sdk_last_attempt_is_read_from_its_header() {
        let last = |v: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = v {
                headers.insert("amz-sdk-request", v.parse().unwrap());
            }
            let body = Bytes::new();
            Seen {
                method: &http::Method::PUT,
                path: "/",
                headers: &headers,
                body: &body,
            }
            .is_last_sdk_attempt()
        };
        assert!(last(Some("attempt=1; max=1")));
        assert!(last(Some("ttl=20260101T000000Z; attempt=3; max=3")));
        assert!(!last(Some("attempt=1; max=3")));
        assert!(!last(None));
    }
}
