//! A loopback HTTP proxy that records how long each request took upstream.
//!
//! The benchmarks put one between the agent and the gateway and one between
//! the gateway and the facilitator, so the time of a paid image can be split
//! into "ours" and "theirs" without instrumenting the programs under test.
//! (The fault-injecting proxy in `e2e` does faults, not timings; this one is
//! the few lines the bench needs, kept out of the test crates.)

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One proxied request.
#[derive(Clone, Debug)]
pub struct Timing {
    pub method: String,
    pub path: String,
    /// Whether it carried an x402 payment header.
    pub paid: bool,
    pub status: u16,
    /// When it reached the proxy (wall clock, to compare with other
    /// processes' clocks).
    pub at: SystemTime,
    pub elapsed: Duration,
}

pub struct TimingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Timing>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TimingProxy {
    pub async fn start(upstream: &str) -> std::io::Result<TimingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let log = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .build()
            .expect("reqwest client builds");
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, log, client) = (upstream.clone(), log2.clone(), client.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (upstream, log, client) =
                            (upstream.clone(), log.clone(), client.clone());
                        async move { Ok::<_, Infallible>(forward(req, &upstream, &client, &log).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(TimingProxy { addr, log, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes the recorded timings, leaving the log empty.
    pub fn take(&self) -> Vec<Timing> {
        std::mem::take(&mut *self.log.lock().expect("timing log"))
    }
}

impl Drop for TimingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: &str,
    client: &reqwest::Client,
    log: &Mutex<Vec<Timing>>,
) -> Response<Full<Bytes>> {
    let at = SystemTime::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let path_q = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let paid =
        parts.headers.contains_key("payment-signature") || parts.headers.contains_key("x-payment");
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = client.request(parts.method.clone(), format!("{upstream}{path_q}"));
    for (k, v) in &parts.headers {
        if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let started = Instant::now();
    let result = out.body(body).send().await;
    let (status, response) = match result {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut r = Response::new(Full::new(bytes));
            *r.status_mut() = status;
            for (k, v) in &headers {
                if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
                    r.headers_mut().append(k, v.clone());
                }
            }
            (status.as_u16(), r)
        }
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
            (502, r)
        }
    };
    log.lock().expect("timing log").push(Timing {
        method: parts.method.to_string(),
        path,
        paid,
        status,
        at,
        elapsed: started.elapsed(),
    });
    response
}
