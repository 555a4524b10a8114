//! The fault-injecting proxy itself: each fault against a local echo server, then Postgres and S3 through it.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use e2e::{ChaosProxy, Fault, TestEnv, Traffic};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Long enough to call a connection hung on loopback, short enough to keep the suite quick.
const HUNG: Duration = Duration::from_millis(300);
/// Generous bound for what must happen, so a loaded machine does not fail the test.
const SOON: Duration = Duration::from_secs(5);

/// An echo server on a random port; it lives as long as the test's runtime.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut answer = vec![0; message.len()];
    timeout(SOON, stream.read_exact(&mut answer)).await.expect("echo in time").unwrap();
    answer
}

/// A proxy in front of an echo server, and a connection through it that has already carried a round trip.
async fn proxied_echo() -> (ChaosProxy, TcpStream) {
    let proxy = ChaosProxy::start(echo_server().await).await;
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo(&mut open, b"before").await, b"before");
    (proxy, open)
}

async fn assert_refused(addr: SocketAddr) {
    let refused = TcpStream::connect(addr).await.expect_err("a connection was accepted");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

/// The peer closed or reset the connection: a read ends with EOF or an error instead of hanging.
async fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0; 1];
    match timeout(SOON, stream.read(&mut byte)).await.expect("closed in time") {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("the connection still carries data"),
    }
}

#[tokio::test]
async fn pass_relays_both_ways_and_counts_the_traffic() {
    let proxy = ChaosProxy::start(echo_server().await).await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo(&mut client, b"hello").await, b"hello");
    assert_eq!(echo(&mut client, b"again").await, b"again");
    assert_eq!(proxy.fault(), Fault::Pass);
    assert_eq!(proxy.traffic(), Traffic { connections: 1, to_upstream: 10, to_client: 10 });
}

#[tokio::test]
async fn delay_holds_back_every_read_in_both_directions() {
    let (proxy, mut client) = proxied_echo().await;
    let latency = Duration::from_millis(100);
    proxy.delay(latency);
    let started = Instant::now();
    assert_eq!(echo(&mut client, b"ping").await, b"ping");
    // Once on the way up, once on the way back.
    assert!(started.elapsed() >= 2 * latency, "round trip took {:?}", started.elapsed());
}

#[tokio::test]
async fn stall_hangs_open_and_new_connections_until_restore() {
    let (proxy, mut open) = proxied_echo().await;

    proxy.stall();
    open.write_all(b"during").await.unwrap();
    let mut held = [0; 6];
    let mut open_echo = pin!(open.read_exact(&mut held));
    assert!(timeout(HUNG, &mut open_echo).await.is_err(), "a stalled connection answered");
    let mut new = timeout(SOON, TcpStream::connect(proxy.addr())).await.expect("stalled proxy accepts").unwrap();
    new.write_all(b"new").await.unwrap();
    let mut new_held = [0; 3];
    let mut new_echo = pin!(new.read_exact(&mut new_held));
    assert!(timeout(HUNG, &mut new_echo).await.is_err(), "a new stalled connection answered");
    assert_eq!(proxy.traffic().to_upstream, 6, "bytes went up during the stall"); // "before" only

    proxy.restore();
    timeout(SOON, open_echo).await.expect("held bytes flow after restore").unwrap();
    timeout(SOON, new_echo).await.expect("held bytes flow after restore").unwrap();
    assert_eq!((&held, &new_held), (b"during", b"new"));
    assert_eq!(proxy.traffic().connections, 2);
}

#[tokio::test]
async fn cut_closes_open_connections_and_still_accepts_new_ones() {
    let (proxy, mut open) = proxied_echo().await;

    proxy.cut();
    assert_closed(&mut open).await;
    assert_eq!(proxy.fault(), Fault::Pass);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo(&mut new, b"after").await, b"after");
}

#[tokio::test]
async fn refuse_gives_connection_refused_until_restore_on_the_same_port() {
    let (proxy, mut open) = proxied_echo().await;
    let addr = proxy.addr();

    proxy.refuse();
    assert_refused(addr).await;
    assert_closed(&mut open).await;

    proxy.restore();
    assert_eq!(proxy.addr(), addr);
    let mut new = TcpStream::connect(addr).await.expect("listening again after restore");
    assert_eq!(echo(&mut new, b"after").await, b"after");
}

#[tokio::test]
async fn throttle_holds_a_transfer_below_its_rate() {
    let (proxy, mut client) = proxied_echo().await;
    let rate = 4 * 1024 * 1024;
    proxy.throttle(rate);
    let sent = e2e::random_bytes(1024 * 1024);
    let started = Instant::now();
    let (mut read, mut write) = client.split();
    let mut received = vec![0; sent.len()];
    let (written, echoed) = tokio::join!(write.write_all(&sent), read.read_exact(&mut received));
    written.unwrap();
    echoed.unwrap();
    let elapsed = started.elapsed();
    assert!(received == sent, "the throttled echo differs");
    let measured = sent.len() as f64 / elapsed.as_secs_f64();
    assert!(measured <= rate as f64, "{measured:.0} B/s through a {rate} B/s throttle");
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_port_and_its_connections() {
    let (proxy, mut open) = proxied_echo().await;
    let addr = proxy.addr();

    drop(proxy);
    assert_closed(&mut open).await;
    assert_refused(addr).await;
}

async fn select_one(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT 1").fetch_one(conn).await
}

#[tokio::test]
async fn postgres_through_the_proxy_stalls_resumes_cuts_and_refuses() {
    let env = TestEnv::from_env();
    let (proxy, database_url) = ChaosProxy::in_front_of(&env.admin_database_url).await;
    let (original, proxied) =
        (reqwest::Url::parse(&env.admin_database_url).unwrap(), reqwest::Url::parse(&database_url).unwrap());
    assert_eq!((proxied.host_str(), proxied.port()), (Some("127.0.0.1"), Some(proxy.addr().port())));
    assert_eq!((proxied.username(), proxied.path()), (original.username(), original.path()));
    let mut conn = PgConnection::connect(&database_url).await.unwrap();
    assert_eq!(select_one(&mut conn).await.unwrap(), 1);
    assert!(proxy.traffic().to_client > 0);

    proxy.stall();
    {
        let mut query = pin!(select_one(&mut conn));
        assert!(timeout(HUNG, &mut query).await.is_err(), "a query through a stalled proxy answered");
        proxy.restore();
        assert_eq!(timeout(SOON, query).await.expect("the held query answers after restore").unwrap(), 1);
    }

    proxy.cut();
    select_one(&mut conn).await.expect_err("a query on a cut connection succeeded");

    proxy.refuse();
    match PgConnection::connect(&database_url).await {
        Err(sqlx::Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
        other => panic!("expected connection refused, got {other:?}"),
    }
    proxy.restore();
    let mut conn = PgConnection::connect(&database_url).await.unwrap();
    assert_eq!(select_one(&mut conn).await.unwrap(), 1);
}

#[tokio::test]
async fn s3_through_the_proxy_fails_while_refused_and_works_after_restore() {
    let env = TestEnv::from_env();
    let (proxy, s3_endpoint) = ChaosProxy::in_front_of(&env.s3_endpoint).await;
    assert_eq!(s3_endpoint, proxy.url());
    let mut config = env.s3_config(format!("t-{}", uuid::Uuid::new_v4().simple()));
    config.s3_endpoint = Some(s3_endpoint);
    let storage = env.fresh_bucket(&config).await;
    storage.check_bucket().await.unwrap();
    assert!(proxy.traffic().connections > 0 && proxy.traffic().to_upstream > 0);

    proxy.refuse();
    storage.check_bucket().await.expect_err("HeadBucket through a refusing proxy succeeded");
    proxy.restore();
    storage.check_bucket().await.expect("HeadBucket after restore");
    storage.client().delete_bucket().bucket(storage.bucket()).send().await.unwrap();
}
