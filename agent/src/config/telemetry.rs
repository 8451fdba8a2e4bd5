//! Logs and traces (`LOG_FORMAT`, `OTEL_*`).

use plumbing::env::Env;

use super::is_http_url;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (default; what CloudWatch and AgentCore expect).
    Json,
    /// Human-readable, for a terminal.
    Text,
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: when set, spans are exported over OTLP/HTTP.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`, default `x402-agent`.
    pub service_name: String,
    /// `LOG_FORMAT` (`json` | `text`), default `json`.
    pub log_format: LogFormat,
}

pub(super) fn telemetry(env: &mut Env) -> TelemetryConfig {
    let telemetry = TelemetryConfig {
        otlp_endpoint: env.opt("OTEL_EXPORTER_OTLP_ENDPOINT"),
        service_name: env
            .opt("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| "x402-agent".into()),
        log_format: match env.opt("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                env.problem(format!("LOG_FORMAT={other:?} must be `json` or `text`"));
                LogFormat::Json
            }
        },
    };
    if let Some(ep) = &telemetry.otlp_endpoint
        && !is_http_url(ep)
    {
        env.problem("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL");
    }
    telemetry
}
