//! A canned HTTP responder: the "trivially cheap server" that measures the
//! load client's own ceiling.
//!
//! It replays a response recorded from the real server (status, headers,
//! body), so the client parses exactly what it parses in the real run, and
//! answers a request that carries an x402 payment header with the recorded
//! paid response instead, so the paying client's ceiling (sign, retry)
//! is measured the same way. It runs as its own process (`cargo xtask
//! bench-responder`, hidden) so it can be pinned to the server's core.

use std::{convert::Infallible, path::Path, sync::Arc};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One recorded response.
#[derive(Debug, Clone, PartialEq)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    /// Records `resp` (hop-by-hop and per-response headers dropped).
    pub async fn record(resp: reqwest::Response) -> Result<Canned> {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "date" | "content-length" | "connection" | "keep-alive" | "transfer-encoding"
                )
            })
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = resp.text().await?;
        Ok(Canned {
            status,
            headers,
            body,
        })
    }

    /// A `200` JSON body of `len` bytes, standing in for a paid response.
    pub fn paid_of_size(len: usize) -> Canned {
        let pad = len.saturating_sub(r#"{"content":""}"#.len());
        Canned {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"content": "x".repeat(pad)}).to_string(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"status": self.status, "headers": self.headers, "body": self.body})
    }

    fn from_json(v: &Value) -> Result<Canned> {
        Ok(Canned {
            status: u16::try_from(v["status"].as_u64().context("status")?)?,
            headers: serde_json::from_value(v["headers"].clone()).context("headers")?,
            body: v["body"].as_str().context("body")?.to_owned(),
        })
    }

    fn prepare(&self) -> Result<Prepared> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &self.headers {
            headers.append(
                http::HeaderName::try_from(k.as_str())?,
                http::HeaderValue::try_from(v.as_str())?,
            );
        }
        Ok(Prepared {
            status: http::StatusCode::from_u16(self.status)?,
            headers,
            body: Bytes::from(self.body.clone()),
        })
    }
}

/// A canned response ready to copy out (the body is shared, not copied).
struct Prepared {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Prepared {
    fn response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// What the responder answers: `unpaid` to every request without a payment
/// header, `paid` (or `unpaid` when absent) to the others.
pub fn write_spec(path: &Path, unpaid: &Canned, paid: Option<&Canned>) -> Result<()> {
    let v = json!({"unpaid": unpaid.to_json(), "paid": paid.map(Canned::to_json)});
    std::fs::write(path, v.to_string())?;
    Ok(())
}

fn read_spec(path: &Path) -> Result<(Canned, Option<Canned>)> {
    let v: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let unpaid = Canned::from_json(&v["unpaid"])?;
    let paid = if v["paid"].is_null() {
        None
    } else {
        Some(Canned::from_json(&v["paid"])?)
    };
    Ok((unpaid, paid))
}

/// Serves `spec` on 127.0.0.1:`port` until killed, on one single-threaded
/// runtime (the cheapest server Tokio and hyper make: one core, no work
/// stealing).
pub async fn serve(spec: &Path, port: u16) -> Result<()> {
    let spec = spec.to_owned();
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve_on_this_thread(&spec, port))
    })
    .await?
}

async fn serve_on_this_thread(spec: &Path, port: u16) -> Result<()> {
    let (unpaid, paid) = read_spec(spec)?;
    let paid = Arc::new(paid.as_ref().unwrap_or(&unpaid).prepare()?);
    let unpaid = Arc::new(unpaid.prepare()?);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (unpaid, paid) = (unpaid.clone(), paid.clone());
        tokio::task::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let h = req.headers();
                let canned = if h.contains_key("payment-signature") || h.contains_key("x-payment") {
                    &paid
                } else {
                    &unpaid
                };
                std::future::ready(Ok::<_, Infallible>(canned.response()))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_round_trips() {
        let dir = std::env::temp_dir().join(format!("responder-spec-{}", std::process::id()));
        let unpaid = Canned {
            status: 402,
            headers: vec![("payment-required".into(), "eyJ4In0=".into())],
            body: "{}".into(),
        };
        let paid = Canned::paid_of_size(100);
        assert_eq!(paid.body.len(), 100);
        write_spec(&dir, &unpaid, Some(&paid)).unwrap();
        assert_eq!(read_spec(&dir).unwrap(), (unpaid.clone(), Some(paid)));
        write_spec(&dir, &unpaid, None).unwrap();
        assert_eq!(read_spec(&dir).unwrap(), (unpaid, None));
        let _ = std::fs::remove_file(dir);
    }
}
