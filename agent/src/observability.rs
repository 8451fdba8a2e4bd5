//! Logs and traces.
//!
//! **Logs** are one JSON object per line on stdout (what AgentCore and
//! CloudWatch expect), each carrying the `requestId` and `sessionId` of the
//! invocation it belongs to as top-level keys, taken from the enclosing
//! spans. `tracing-subscriber`'s own JSON formatter nests span fields under
//! `"span"`/`"spans"`, so the event formatter here is written by hand (about
//! sixty lines) to put those two ids where log queries look for them.
//!
//! **Traces**: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, `tracing` spans are
//! exported as OpenTelemetry spans over OTLP/HTTP (protobuf) to
//! `{endpoint}/v1/traces`, batched. Span names and attributes follow the
//! OpenTelemetry gen_ai semantic conventions that AgentCore observability
//! reads. The agreed names (both halves of the crate rely on them):
//!
//! | span | opened by | fields |
//! |---|---|---|
//! | `invoke_agent` | `server`, one per invocation | `requestId`, `sessionId`, `session.id`, `gen_ai.operation.name = "invoke_agent"`, `gen_ai.agent.name` |
//! | `chat` | `turn`/`model`, one per model call | `gen_ai.operation.name = "chat"`, `gen_ai.system = "aws.bedrock"`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons` |
//! | `execute_tool` | `turn`, one per tool call | `gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id` |
//!
//! Fields not known when a span opens are declared `tracing::field::Empty`
//! and filled with `Span::record`. Nothing secret (keys, signatures, JWTs,
//! payment headers) is ever a field or a log message.

use std::{fmt, io};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field, span};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter, format::Writer},
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
};

use crate::config::{LogFormat, TelemetryConfig};

/// The name spans report as `gen_ai.agent.name`.
pub const AGENT_NAME: &str = "x402-agent";

/// Flushes and stops the trace exporter when dropped (at process exit).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every finished span now (tests; shutdown).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            eprintln!("trace flush failed: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {e}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TelemetryError(String);

/// Installs logging (and tracing export when configured) for the process.
/// Log level from `RUST_LOG` (default `info`).
pub fn init(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let (subscriber, telemetry) = subscriber(cfg, io::stdout)?;
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(telemetry)
}

/// The subscriber `init` installs, writing logs to `writer`; tests use it
/// with `tracing::subscriber::with_default` and a buffer.
pub fn subscriber<W>(
    cfg: &TelemetryConfig,
    writer: W,
) -> Result<(impl Subscriber + Send + Sync + 'static, Telemetry), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match cfg.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonLine)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let (otel_layer, provider) = match &cfg.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|e| TelemetryError(e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(cfg.service_name.clone())
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("agent"));
            (Some(layer), Some(provider))
        }
    };
    let subscriber = Registry::default()
        .with(ContextIdsLayer)
        .with(otel_layer)
        .with(fmt_layer.with_filter(filter));
    Ok((subscriber, Telemetry { provider }))
}

/// The ids a span carries for the logs of everything inside it.
#[derive(Default, Clone)]
struct ContextIds {
    request_id: Option<String>,
    session_id: Option<String>,
}

impl tracing::field::Visit for ContextIds {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "requestId" => self.request_id = Some(value.to_owned()),
            "sessionId" => self.session_id = Some(value.to_owned()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "requestId" | "sessionId") {
            self.record_str(field, format!("{value:?}").trim_matches('"'));
        }
    }
}

/// Remembers `requestId`/`sessionId` span fields in the span's extensions.
struct ContextIdsLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ContextIdsLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut ids = ContextIds::default();
        attrs.record(&mut ids);
        if (ids.request_id.is_some() || ids.session_id.is_some())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(ids);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut ids = ext.get_mut::<ContextIds>().cloned().unwrap_or_default();
        values.record(&mut ids);
        if ids.request_id.is_some() || ids.session_id.is_some() {
            ext.replace(ids);
        }
    }
}

/// `{"timestamp","level","target","message","requestId","sessionId","span",...fields}`.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        obj.insert("timestamp".into(), now.into());
        obj.insert("level".into(), meta.level().as_str().into());
        obj.insert("target".into(), meta.target().into());
        let mut ids = ContextIds::default();
        if let Some(scope) = ctx.event_scope() {
            let mut leaf = None;
            for span in scope {
                leaf.get_or_insert_with(|| span.name());
                if let Some(found) = span.extensions().get::<ContextIds>() {
                    ids.request_id = ids.request_id.or_else(|| found.request_id.clone());
                    ids.session_id = ids.session_id.or_else(|| found.session_id.clone());
                }
            }
            if let Some(name) = leaf {
                obj.insert("span".into(), name.into());
            }
        }
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        // Ids given on the event itself win over the enclosing spans'.
        for (k, v) in [("requestId", ids.request_id), ("sessionId", ids.session_id)] {
            if let Some(v) = v {
                obj.insert(k.into(), v.into());
            }
        }
        obj.extend(fields.0);
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(w, "{line}")
    }
}

struct JsonFields(Map<String, Value>);

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.0.insert(f.name().into(), v.to_string().into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumbing::logs::LogBuffer;

    fn cfg(endpoint: Option<String>) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint,
            service_name: "test".into(),
            log_format: LogFormat::Json,
        }
    }

    #[test]
    fn logs_are_json_lines_with_request_and_session_ids() {
        let buf = LogBuffer::default();
        let (sub, _t) = subscriber(&cfg(None), buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!(
                "invoke_agent",
                requestId = "r-1",
                sessionId = tracing::field::Empty
            );
            let _g = span.enter();
            tracing::info!(prompt_chars = 5u64, "before the session is known");
            span.record("sessionId", "s-1");
            let inner = tracing::info_span!("execute_tool", "gen_ai.tool.name" = "check_balance");
            let _i = inner.enter();
            tracing::warn!(error = "boom", "inside a tool");
        });
        tracing::subscriber::with_default(subscriber(&cfg(None), buf.clone()).unwrap().0, || {
            tracing::info!("outside any invocation");
        });
        let lines: Vec<Value> = buf
            .contents()
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["requestId"], "r-1");
        assert!(lines[0].get("sessionId").is_none());
        assert_eq!(lines[0]["message"], "before the session is known");
        assert_eq!(lines[0]["prompt_chars"], 5);
        assert_eq!(lines[1]["requestId"], "r-1");
        assert_eq!(lines[1]["sessionId"], "s-1");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["span"], "execute_tool");
        assert!(lines[2].get("requestId").is_none());
        assert!(lines[2]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
