//! serde_json <-> Smithy `Document`, the AWS SDK's type for free-form JSON
//! (Bedrock tool inputs, results and schemas; AgentCore Memory `blob`
//! payloads, AgentCore Payments requirements and payloads). Written by
//! hand: the SDK has no serde bridge for `Document`.

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// JSON -> Smithy `Document` (tool inputs, tool results, schemas). Written
/// by hand: the SDK has no serde bridge for `Document`.
pub fn json_to_doc(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(json_to_doc).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), json_to_doc(v))).collect())
        }
    }
}

/// Smithy `Document` -> JSON.
pub fn doc_to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(doc_to_json).collect()),
        Document::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), doc_to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_round_trip() {
        for v in [
            json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}}),
            json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": "0.04"}}),
        ] {
            assert_eq!(doc_to_json(&json_to_doc(&v)), v);
        }
    }
}
