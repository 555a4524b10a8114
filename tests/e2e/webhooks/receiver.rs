//! A webhook receiver in the test process: real HTTP on a port of its own, answering from a script, keeping
//! every request it was sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers next.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(StatusCode),
    /// Answers nothing for this long.
    Hang(Duration),
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    /// Then 204 for ever.
    answers: VecDeque<Answer>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free port, answering `answers` in turn and then 204.
    pub async fn start(answers: impl IntoIterator<Item = Answer>) -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), answers)
    }

    pub fn start_on(listener: tokio::net::TcpListener, answers: impl IntoIterator<Item = Answer>) -> Self {
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script { received: vec![], answers: answers.into_iter().collect() }));
        let app = Router::new().route("/hooks", post(receive)).with_state(script.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, script, server: Arc::new(server) }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(script): State<Arc<Mutex<Script>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = {
        let mut script = script.lock().unwrap();
        script.received.push(Received { headers, body });
        script.answers.pop_front()
    };
    match answer {
        Some(Answer::Status(status)) => status,
        Some(Answer::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NO_CONTENT,
    }
}
