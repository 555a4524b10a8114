//! One proxied connection: the two byte pumps, each paced by the fault in force.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Fault, Shared};

pub(super) async fn run(mut client: TcpStream, shared: Arc<Shared>, cut: CancellationToken) {
    let relay = async {
        let mut upstream = TcpStream::connect(shared.upstream).await?;
        // Without this, Nagle plus delayed ACKs would add their own ~40 ms to what a test measures.
        client.set_nodelay(true)?;
        upstream.set_nodelay(true)?;
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        tokio::try_join!(
            pump(client_read, upstream_write, shared.fault.subscribe(), &shared.to_upstream),
            pump(upstream_read, client_write, shared.fault.subscribe(), &shared.to_client),
        )
    };
    // Either way both sockets close when this returns.
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = relay => {}
    }
}

const BUFFER: usize = 16 * 1024;

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    fault: watch::Receiver<Fault>,
    relayed: &AtomicU64,
) -> io::Result<()> {
    let mut buffer = vec![0; BUFFER];
    let mut pacer = Pacer { fault, budget: None };
    loop {
        let read = from.read(&mut buffer[..pacer.read_limit()]).await;
        // Paced before looking at the result, so that a stall holds back an EOF or a reset as well.
        pacer.pace(*read.as_ref().unwrap_or(&0)).await;
        let len = read?;
        if len == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buffer[..len]).await?;
        relayed.fetch_add(len as u64, Ordering::Relaxed);
    }
}

/// Applies the fault in force to one direction of one connection.
struct Pacer {
    fault: watch::Receiver<Fault>,
    budget: Option<Budget>,
}

/// Bytes sent since a throttle began: sleeping until `since + bytes / rate` keeps the average exact, where
/// sleeping `len / rate` per read would add the timer's rounding to every read.
struct Budget {
    bytes_per_sec: u64,
    since: Instant,
    bytes: u64,
}

/// Idle time a throttled connection may spend in one burst afterwards.
const BURST: Duration = Duration::from_millis(50);

impl Pacer {
    fn read_limit(&mut self) -> usize {
        match *self.fault.borrow_and_update() {
            // Small reads keep a throttled stream smooth instead of bursting a buffer per long sleep.
            Fault::Throttle(bytes_per_sec) => (bytes_per_sec / 20).clamp(1, BUFFER as u64) as usize,
            _ => BUFFER,
        }
    }

    async fn pace(&mut self, len: usize) {
        // The sender lives as long as the relay, so an error here cannot happen while anyone reads the result.
        let _ = self.fault.wait_for(|fault| *fault != Fault::Stall).await;
        let fault = *self.fault.borrow_and_update();
        let until = match fault {
            Fault::Delay(latency) => Some(Instant::now() + latency),
            Fault::Throttle(bytes_per_sec) => Some(self.throttled_until(bytes_per_sec, len)),
            Fault::Pass | Fault::Stall | Fault::Refuse => None,
        };
        if !matches!(fault, Fault::Throttle(_)) {
            self.budget = None;
        }
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
            // A stall switched on during the wait holds these bytes too.
            let _ = self.fault.wait_for(|fault| *fault != Fault::Stall).await;
        }
    }

    fn throttled_until(&mut self, bytes_per_sec: u64, len: usize) -> Instant {
        let now = Instant::now();
        let budget = self.budget.get_or_insert(Budget { bytes_per_sec, since: now, bytes: 0 });
        let due = |budget: &Budget| budget.since + Duration::from_secs_f64(budget.bytes as f64 / bytes_per_sec as f64);
        if budget.bytes_per_sec != bytes_per_sec || due(budget) + BURST < now {
            *budget = Budget { bytes_per_sec, since: now, bytes: 0 };
        }
        budget.bytes += len as u64;
        due(budget)
    }
}
