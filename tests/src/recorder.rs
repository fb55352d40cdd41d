//! An HTTP server of the tests' own on loopback, standing in for what
//! the dispatcher calls out to: a webhook receiver, an SMS or voice
//! gateway. It records every request and answers with the scripted
//! statuses in turn, then 200 (with `{"ok": true}`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Got {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as a form.
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

#[derive(Clone, Default)]
pub struct Recorder {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Recorder {
    /// Listens on a free loopback port, any method and path; returns its
    /// base URL (`http://127.0.0.1:port`).
    pub async fn start(script: Vec<u16>) -> (String, Self) {
        let recorder = Self {
            script: Arc::new(Mutex::new(script)),
            ..Self::default()
        };
        let app = axum::Router::new()
            .fallback(
                |State(r): State<Recorder>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                    r.got.lock().unwrap().push(Got { uri, headers, body });
                    let mut script = r.script.lock().unwrap();
                    let code = if script.is_empty() {
                        200
                    } else {
                        script.remove(0)
                    };
                    (StatusCode::from_u16(code).unwrap(), "{\"ok\": true}")
                },
            )
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, recorder)
    }

    /// Answers the next requests with these statuses first.
    pub fn script(&self, statuses: impl IntoIterator<Item = u16>) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Every request so far, in order.
    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The requests to `path`, in order.
    pub fn to(&self, path: &str) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.uri.path() == path)
            .collect()
    }
}
