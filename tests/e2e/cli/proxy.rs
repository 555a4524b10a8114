//! An HTTP/1.1 proxy between `upl` and the service (or S3) for the CLI tests: it records the head of every
//! request, so a test sees exactly what `upl` sent (tokens, idempotency keys, ranges), and it answers, loses,
//! delays or throttles the requests a test picks. One request per connection: it asks both sides for
//! `connection: close`, which HTTP clients honour.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this instead of the upstream: status, extra headers, JSON body.
    Answer { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Forward the request, wait for the upstream's whole answer, then close without it (an answer lost on
    /// the way back: the upstream did the work, the client cannot know).
    LoseAnswer,
    /// Hold the request this long before forwarding it; dropped if the client goes away meanwhile.
    Delay(Duration),
    /// Relay the answer's body at about this many bytes per second.
    Throttle(u64),
}

struct Rule {
    method: String,
    path: String,
    times: usize,
    fault: Fault,
}

#[derive(Default)]
struct Shared {
    requests: Vec<Recorded>,
    rules: Vec<Rule>,
}

pub struct Proxy {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a random port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, shared) = (upstream.clone(), accepting.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &shared).await;
                });
            }
        });
        Self { url, shared, accept }
    }

    /// Applies `fault` to the next `times` requests whose method is `method` and whose target contains `path`.
    pub fn fault(&self, method: &str, path: &str, times: usize, fault: Fault) {
        let rule = Rule { method: method.to_string(), path: path.to_string(), times, fault };
        self.shared.lock().unwrap().rules.push(rule);
    }

    /// Lets every request through untouched from now on.
    pub fn clear_faults(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The recorded requests with this method whose target contains `path`.
    pub fn matching(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.target.contains(path)).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The head as sent on, asking for the connection to close after this message.
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.first);
        for (name, value) in self.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("connection")) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("connection: close\r\n\r\n");
        out.into_bytes()
    }

    fn framing(&self, has_body: bool) -> Framing {
        if !has_body {
            Framing::Empty
        } else if self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked
        } else if let Some(length) = self.header("content-length").and_then(|v| v.trim().parse().ok()) {
            Framing::Length(length)
        } else {
            Framing::UntilEof
        }
    }
}

enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilEof,
}

async fn serve(client: TcpStream, upstream: &str, shared: &Mutex<Shared>) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let Some(request) = read_head(&mut client).await? else { return Ok(()) };
    let mut parts = request.first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    // Read the whole body first: closing a socket with unread bytes resets it, and the client would lose
    // even an answer this proxy makes up.
    let has_body = request.header("content-length").is_some() || request.header("transfer-encoding").is_some();
    // A chunked body is kept with its framing and sent on as it came, with its own headers.
    let mut body = Vec::new();
    copy_body(&mut client, &mut body, request.framing(has_body), None).await?;
    let fault = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(Recorded {
            method: method.clone(),
            target: target.clone(),
            headers: request.headers.clone(),
            at: Instant::now(),
        });
        let rule = shared.rules.iter_mut().find(|r| r.times > 0 && r.method == method && target.contains(&r.path));
        rule.map(|rule| {
            rule.times -= 1;
            rule.fault.clone()
        })
    };
    let mut throttle = None;
    match fault {
        Some(Fault::Answer { status, headers, body }) => {
            let mut answer = format!(
                "HTTP/1.1 {status} Fault\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (name, value) in headers {
                answer.push_str(&format!("{name}: {value}\r\n"));
            }
            answer.push_str("connection: close\r\n\r\n");
            answer.push_str(&body);
            return client.get_mut().write_all(answer.as_bytes()).await;
        }
        Some(Fault::Delay(delay)) => {
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                // The client hung up (or was killed): the request never reaches the upstream.
                _ = client.read(&mut probe) => return Ok(()),
            }
        }
        Some(Fault::Throttle(rate)) => throttle = Some(rate),
        Some(Fault::LoseAnswer) | None => {}
    }
    let mut server = BufReader::new(TcpStream::connect(upstream).await?);
    server.get_mut().write_all(&request.bytes()).await?;
    server.get_mut().write_all(&body).await?;
    let Some(response) = read_head(&mut server).await? else { return Ok(()) };
    let status: u16 = response.first.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let has_body = method != "HEAD" && !matches!(status, 100..=199 | 204 | 304);
    if matches!(fault, Some(Fault::LoseAnswer)) {
        return copy_body(&mut server, &mut tokio::io::sink(), response.framing(has_body), None).await;
    }
    client.get_mut().write_all(&response.bytes()).await?;
    copy_body(&mut server, client.get_mut(), response.framing(has_body), throttle).await?;
    client.get_mut().flush().await
}

async fn read_head<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Option<Head>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut lines = lines.into_iter();
    let Some(first) = lines.next() else { return Ok(None) };
    let headers = lines
        .filter_map(|line| line.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .collect();
    Ok(Some(Head { first, headers }))
}

/// Copies one message body; a chunked body is copied with its framing, which HTTP/1.1 allows as is.
async fn copy_body<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    from: &mut BufReader<R>,
    to: &mut W,
    framing: Framing,
    throttle: Option<u64>,
) -> std::io::Result<()> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(length) => copy_exactly(from, to, length, throttle).await,
        Framing::UntilEof => copy_exactly(from, to, u64::MAX, throttle).await,
        Framing::Chunked => loop {
            let mut line = String::new();
            from.read_line(&mut line).await?;
            to.write_all(line.as_bytes()).await?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers, then the empty line that ends the body.
                loop {
                    let mut trailer = String::new();
                    from.read_line(&mut trailer).await?;
                    to.write_all(trailer.as_bytes()).await?;
                    if trailer.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            copy_exactly(from, to, size + 2, throttle).await?;
        },
    }
}

async fn copy_exactly<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    from: &mut BufReader<R>,
    to: &mut W,
    mut left: u64,
    throttle: Option<u64>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = from.read(&mut buffer[..want]).await?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
        left -= read as u64;
        if let Some(rate) = throttle {
            tokio::time::sleep(Duration::from_secs_f64(read as f64 / rate as f64)).await;
        }
    }
    Ok(())
}
