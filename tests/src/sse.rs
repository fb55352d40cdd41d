//! An SSE client for the tests: parses `GET /api/v1/stream` frames itself,
//! so the tests see exactly what a phone's `EventSource` would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::app::TestApp;
use crate::wait::PATIENCE;

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

/// An open `GET /api/v1/stream`.
pub struct Stream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Stream {
    /// Opens the stream as `token`, resuming after `last_event_id`.
    pub async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> Self {
        let mut req = app
            .http
            .get(format!("{}/api/v1/stream", app.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("stream request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self::from_response(resp)
    }

    /// Reads a stream response obtained some other way.
    pub fn from_response(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: Vec::new(),
        }
    }

    /// A complete event from the buffer; comment-only blocks (keep-alives)
    /// are skipped.
    fn take(&mut self) -> Option<Frame> {
        loop {
            let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8(block).expect("UTF-8 frames");
            let (mut id, mut event, mut data) = (None, None, Vec::new());
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if let Some(event) = event {
                return Some(Frame {
                    id: id.expect("every event has an id"),
                    event,
                    data: serde_json::from_str(&data.join("\n")).expect("JSON data"),
                });
            }
        }
    }

    /// The next event, or `None` when none comes within `patience`.
    pub async fn next_within(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(f) = self.take() {
                return Some(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(Ok(None)) => panic!("the stream ended"),
                Ok(Err(e)) => panic!("the stream failed: {e}"),
            }
        }
    }

    pub async fn next(&mut self) -> Frame {
        self.next_within(PATIENCE)
            .await
            .expect("an event before the patience ran out")
    }

    /// Skips events until one named `event` arrives.
    pub async fn until(&mut self, event: &str) -> Frame {
        loop {
            let f = self.next().await;
            if f.event == event {
                return f;
            }
        }
    }
}
