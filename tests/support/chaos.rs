//! A fault-injecting TCP proxy that a test puts between a process and a dependency it wants to break.
//!
//! Point the code under test at the proxy instead of the dependency, then switch faults at any moment:
//!
//! ```ignore
//! // S3: the endpoint URL goes through the proxy (path-style addressing keeps the host as given).
//! let (s3, s3_endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
//! config.service.s3.s3_endpoint = Some(s3_endpoint);
//! // Postgres: the same database URL with the proxy's host:port.
//! let (pg, database_url) = ChaosProxy::in_front_of(&config.service.database.database_url).await;
//! config.service.database.database_url = database_url;
//!
//! s3.stall();              // hung dependency: connections open, nothing moves either way
//! pg.refuse();             // dependency down: open connections closed, new ones refused
//! s3.restore();            // back to normal on the same port
//! assert!(s3.traffic().to_upstream > 0);
//! ```
//!
//! Faults apply to open connections as well as new ones, from the next read on. Dropping the proxy closes
//! its listener and every connection; it leaves no task behind. Modelled on crates.io's test `ChaosProxy`.
//!
//! The proxy relays on the test's own runtime: a test that blocks its thread (`std::process::Command::
//! output`, `std::thread::sleep`) while other processes talk through the proxy must run `multi_thread` or
//! block inside `spawn_blocking`, or the proxy stalls with it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

mod relay;

/// What the proxy does to the bytes it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relays everything untouched.
    Pass,
    /// Waits this long before forwarding each read, in both directions.
    Delay(Duration),
    /// Forwards at most this many bytes per second in each direction.
    Throttle(u64),
    /// Accepts connections and keeps them open, but forwards nothing (not even a close) until restored.
    Stall,
    /// Refuses new connections at the TCP level (ECONNREFUSED) and has closed the open ones.
    Refuse,
}

/// What went through the proxy since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub connections: u64,
    pub to_upstream: u64,
    pub to_client: u64,
}

pub struct ChaosProxy {
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    /// The pumps of open connections watch this to pace themselves.
    fault: watch::Sender<Fault>,
    /// Held while switching faults and while admitting a connection, so none slips past a `refuse` or `cut`.
    gate: Mutex<Gate>,
    connections: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
}

struct Gate {
    port: Port,
    /// The accept loop's waker, to wake it when a listener comes back.
    accept_waker: Option<Waker>,
    /// Cancelled by `cut`; every connection admitted since the last cut holds a clone.
    cut: CancellationToken,
}

/// The proxy's own port.
enum Port {
    Listening(TcpListener),
    /// Bound but not listening, while refusing: the kernel answers connects with RST, and no other socket (an
    /// outgoing connection picking an ephemeral port, say) can take the port before `restore` listens again.
    Reserved(TcpSocket),
    Closed,
}

impl ChaosProxy {
    /// A proxy on 127.0.0.1 (random port) relaying to `upstream`, in `Fault::Pass`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).listen(BACKLOG).expect("chaos proxy listen");
        let addr = listener.local_addr().expect("chaos proxy address");
        let shared = Arc::new(Shared {
            addr,
            upstream,
            fault: watch::Sender::new(Fault::Pass),
            gate: Mutex::new(Gate {
                port: Port::Listening(listener),
                accept_waker: None,
                cut: CancellationToken::new(),
            }),
            connections: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        });
        let accept_loop = tokio::spawn(accept_loop(shared.clone()));
        Self { shared, accept_loop }
    }

    /// A proxy in front of the host:port of `url` (any scheme: `http://`, `postgres://`), and `url` rewritten
    /// to go through it.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url} is not a URL: {e}"));
        let host = parsed.host_str().unwrap_or_else(|| panic!("{url} has no host"));
        let port = parsed.port_or_known_default().unwrap_or_else(|| match parsed.scheme() {
            "postgres" | "postgresql" => 5432,
            scheme => panic!("{url}: no port and no known default for {scheme}"),
        });
        let upstream = tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve {host}:{port}"));
        let proxy = Self::start(upstream).await;
        let proxied = proxy.proxied_url(url);
        (proxy, proxied)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`, e.g. for `S3Config::s3_endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// `url` with its host and port replaced by the proxy's; scheme, credentials, path and query kept.
    pub fn proxied_url(&self, url: &str) -> String {
        let mut parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url} is not a URL: {e}"));
        parsed.set_ip_host(self.shared.addr.ip()).unwrap_or_else(|()| panic!("{url} cannot take an IP host"));
        parsed.set_port(Some(self.shared.addr.port())).unwrap_or_else(|()| panic!("{url} cannot take a port"));
        let proxied = String::from(parsed);
        // The parser adds a `/` path to `http://host:port`; an endpoint URL is compared and joined as given.
        match proxied.strip_suffix('/') {
            Some(bare) if !url.ends_with('/') => bare.to_string(),
            _ => proxied,
        }
    }

    pub fn fault(&self) -> Fault {
        *self.shared.fault.borrow()
    }

    pub fn traffic(&self) -> Traffic {
        Traffic {
            connections: self.shared.connections.load(Ordering::Relaxed),
            to_upstream: self.shared.to_upstream.load(Ordering::Relaxed),
            to_client: self.shared.to_client.load(Ordering::Relaxed),
        }
    }

    pub fn restore(&self) {
        self.set(Fault::Pass);
    }

    pub fn delay(&self, latency: Duration) {
        self.set(Fault::Delay(latency));
    }

    pub fn throttle(&self, bytes_per_sec: u64) {
        self.set(Fault::Throttle(bytes_per_sec));
    }

    pub fn stall(&self) {
        self.set(Fault::Stall);
    }

    /// The dependency is down: open connections are closed now and new ones get "connection refused" until
    /// another fault (or `restore`) listens again on the same port.
    pub fn refuse(&self) {
        self.set(Fault::Refuse);
    }

    /// Closes every open connection now, in both directions; the fault in force stays and new connections
    /// are still accepted.
    pub fn cut(&self) {
        self.shared.gate().cut_all();
    }

    /// Switches to `fault`; open connections follow from their next read. Call it inside the test's runtime
    /// (listening again registers the socket with it).
    pub fn set(&self, fault: Fault) {
        assert_ne!(fault, Fault::Throttle(0), "throttle to 0 bytes/s is a stall: use stall()");
        let mut gate = self.shared.gate();
        self.shared.fault.send_replace(fault);
        if fault == Fault::Refuse {
            gate.stop_listening(self.shared.addr);
            gate.cut_all();
        } else {
            gate.listen_again();
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        let mut gate = self.shared.gate();
        gate.port = Port::Closed;
        gate.cut.cancel();
        // The connection tasks live in the accept loop's JoinSet: aborting the loop aborts them all.
        self.accept_loop.abort();
    }
}

impl Gate {
    fn stop_listening(&mut self, addr: SocketAddr) {
        if let Port::Listening(_) = self.port {
            // Closed first: a bound socket cannot share the port with a listening one (short of SO_REUSEPORT,
            // which lets bind(0) hand the same port to two proxies). The port is free for microseconds.
            self.port = Port::Closed;
            self.port = Port::Reserved(bind(addr));
        }
    }

    /// Listening again before `set` returns, so the test's next connect is accepted.
    fn listen_again(&mut self) {
        self.port = match std::mem::replace(&mut self.port, Port::Closed) {
            Port::Reserved(socket) => {
                if let Some(waker) = self.accept_waker.take() {
                    waker.wake();
                }
                Port::Listening(socket.listen(BACKLOG).expect("chaos proxy listens again"))
            }
            unchanged => unchanged,
        };
    }

    fn cut_all(&mut self) {
        self.cut.cancel();
        self.cut = CancellationToken::new();
    }
}

impl Shared {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        // A panic while holding the gate cannot leave it inconsistent: every change is one assignment.
        self.gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        let mut gate = self.gate();
        // Kept on every poll: `refuse` may drop the listener that holds the current registration.
        gate.accept_waker = Some(cx.waker().clone());
        match &gate.port {
            Port::Listening(listener) => listener.poll_accept(cx).map_ok(|(stream, _)| stream),
            Port::Reserved(_) | Port::Closed => Poll::Pending,
        }
    }

    /// The token that cuts a connection just accepted, or `None` when a `refuse` came in since the kernel
    /// accepted it.
    fn admit(&self) -> Option<CancellationToken> {
        let gate = self.gate();
        (*self.fault.borrow() != Fault::Refuse).then(|| gate.cut.clone())
    }
}

const BACKLOG: u32 = 1024;

/// SO_REUSEADDR lets `refuse` bind its reservation while connections from before linger in TIME_WAIT.
fn bind(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().expect("chaos proxy socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).unwrap_or_else(|e| panic!("chaos proxy cannot bind {addr}: {e}"));
    socket
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = std::future::poll_fn(|cx| shared.poll_accept(cx)) => match accepted {
                Ok(client) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    if let Some(cut) = shared.admit() {
                        relays.spawn(relay::run(client, shared.clone(), cut));
                    }
                }
                // Out of file descriptors and the like: let the peer's connect time out, don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = relays.join_next() => {}
        }
    }
}
