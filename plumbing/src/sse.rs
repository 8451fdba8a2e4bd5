//! Incremental Server-Sent Events parser: the agent's `text/event-stream`,
//! read by the chat Lambda, the terminal chat, the demo and the tests.
//!
//! Bytes arrive in arbitrary chunks (from InvokeAgentRuntime, or over HTTP); an event may be
//! split across chunks and a chunk may hold many events. Per the SSE spec, lines
//! end with `\n` or `\r\n`, `data:` lines of one event are joined with `\n`, a
//! blank line dispatches the event, and lines starting with `:` are comments
//! (keep-alives). Other fields (`event:`, `id:`, `retry:`) are ignored: the
//! agent puts everything in the JSON `data`.

/// Largest single event accepted (the AgentCore streaming chunk limit is 10 MB).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("agent sent an SSE event larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

/// Feed it chunks, get back the `data` of each completed event, in order.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// `data` of the current event so far; `None` until a `data:` line arrives.
    data: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(event) = self.line_done(&line) {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        let pending = self.line.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }

    /// End of stream: returns a last event that lacked its closing blank line.
    pub fn finish(mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            // A dangling `data:` line at EOF: dispatch it rather than lose it.
            if let Some(event) = self.line_done(&line) {
                return Some(event);
            }
        }
        self.data.take()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"a\"").unwrap().is_empty());
        assert!(p.push(b":1}\r\n").unwrap().is_empty());
        let got = p
            .push(b"\r\n: keep-alive\n\ndata: x\ndata: y\n\ndata: z")
            .unwrap();
        assert_eq!(got, vec![r#"{"a":1}"#.to_owned(), "x\ny".to_owned()]);
        assert_eq!(p.finish(), Some("z".to_owned()));
    }

    #[test]
    fn ignores_other_fields_and_empty_events() {
        let mut p = SseParser::new();
        let got = p
            .push(b"event: message\nid: 1\n\nretry: 5\ndata:tight\n\n")
            .unwrap();
        assert_eq!(got, vec!["tight".to_owned()]);
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn multibyte_utf8_split_between_chunks_survives() {
        let bytes = "data: é🐈\n\n".as_bytes();
        let mut p = SseParser::new();
        let mut got = p.push(&bytes[..8]).unwrap();
        got.extend(p.push(&bytes[8..]).unwrap());
        assert_eq!(got, vec!["é🐈".to_owned()]);
    }

    #[test]
    fn events_split_at_any_byte_are_reassembled() {
        let stream = "data: {\"a\":1}\n\n: keep-alive\n\ndata: x\r\ndata: y\r\n\r\ndata: é🐈\n\n";
        let bytes = stream.as_bytes();
        for split in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&bytes[..split]).unwrap();
            got.extend(p.push(&bytes[split..]).unwrap());
            assert_eq!(got, ["{\"a\":1}", "x\ny", "é🐈"], "split at {split}");
        }
    }

    #[test]
    fn refuses_an_unbounded_event() {
        let mut p = SseParser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.push(&big), Err(EventTooLarge));
    }
}
