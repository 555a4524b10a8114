//! HTTP plumbing shared by every measurement: one keep-alive connection per worker, and a JSON client for set-up.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

pub type Sender = SendRequest<Full<Bytes>>;

/// `host:port` of a URL (port 80 when it names none).
pub fn authority(uri: &Uri) -> anyhow::Result<String> {
    let host = uri.host().ok_or_else(|| anyhow!("{uri} names no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// Opens one HTTP/1.1 connection; its driver runs on the runtime until either side closes it.
pub async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request in origin form with its `Host`, as a client on a connection of its own sends it.
pub fn request(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder().method(method.clone()).uri(target).body(Full::new(body))?;
    let host = HeaderValue::from_str(uri.authority().ok_or_else(|| anyhow!("{uri} names no host"))?.as_str())?;
    request.headers_mut().insert(header::HOST, host);
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    Ok(request)
}

/// Reads a body to its end without keeping it; returns its length.
pub async fn drain(response: Response<Incoming>) -> anyhow::Result<u64> {
    let mut body = response.into_body();
    let mut length = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            length += data.len() as u64;
        }
    }
    Ok(length)
}

/// An answer read whole (set-up calls only: small bodies).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("{} answered no JSON", self.status))
    }
}

/// The set-up client: pooled keep-alive connections, the given headers (the bearer token) on every request.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    headers: HeaderMap,
}

impl Http {
    pub fn new(headers: HeaderMap) -> Self {
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http();
        Self { client, headers }
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub async fn send(&self, method: Method, url: &str, headers: &HeaderMap, body: Bytes) -> anyhow::Result<Answer> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in self.headers.iter().chain(headers) {
            builder = builder.header(name, value);
        }
        let response =
            self.client.request(builder.body(Full::new(body))?).await.with_context(|| format!("{method} {url}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }

    /// A JSON call that must succeed; its answer parsed.
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut headers = HeaderMap::new();
        let bytes = match body {
            Some(value) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(value)?)
            }
            None => Bytes::new(),
        };
        let answer = self.send(method.clone(), url, &headers, bytes).await?;
        if !answer.status.is_success() {
            bail!("{method} {url} answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body));
        }
        if answer.body.is_empty() { Ok(Value::Null) } else { answer.json() }
    }
}
