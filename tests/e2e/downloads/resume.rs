//! `curl -C -` resumes an interrupted download with a Range request and ends with the same bytes.

use std::process::Command;

use e2e::{TestApp, random_bytes};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A one-connection proxy that relays the first `limit` bytes of the answer, then cuts the connection:
/// a download dropped mid-body, at a known point.
async fn cutting_proxy(upstream: std::net::SocketAddr, limit: u64) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (server_read, mut server_write) = server.into_split();
        let request = tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
        let _ = tokio::io::copy(&mut server_read.take(limit), &mut client_write).await;
        request.abort();
    });
    addr
}

#[tokio::test]
async fn curl_resumes_an_interrupted_download_byte_for_byte() {
    let app = TestApp::spawn().await;
    let data = random_bytes(6 * 1024 * 1024);
    let id = app.upload_file(&data, 5 * 1024 * 1024).await;
    let path = format!("/v1/files/{id}");
    let dir = std::env::temp_dir().join(format!("resume-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("download.bin");
    let file_arg = file.to_str().unwrap().to_string();

    let authorization = format!("Authorization: Bearer {}", app.token);
    let proxy = cutting_proxy(app.config.bind_addr, 2_000_000).await;
    let cut_url = format!("http://{proxy}{path}");
    let cut = tokio::task::spawn_blocking({
        let file_arg = file_arg.clone();
        let authorization = authorization.clone();
        move || Command::new("curl").args(["-sS", "-H", &authorization, "-o", &file_arg, &cut_url]).status()
    })
    .await
    .unwrap()
    .expect("curl runs");
    assert_eq!(cut.code(), Some(18), "curl should report a partial transfer");
    let partial = std::fs::metadata(&file).unwrap().len() as usize;
    assert!(partial > 0 && partial < data.len(), "partial download of {partial} bytes");
    assert_eq!(std::fs::read(&file).unwrap(), data[..partial]);

    let url = app.url(&path);
    let resumed = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "-f", "-H", &authorization, "-D", "-", "-C", "-", "-o", &file_arg, &url])
            .output()
    })
    .await
    .unwrap()
    .expect("curl runs");
    let headers = String::from_utf8_lossy(&resumed.stdout).to_ascii_lowercase();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(headers.starts_with("http/1.1 206"), "{headers}");
    assert!(
        headers.contains(&format!("content-range: bytes {partial}-{}/{}", data.len() - 1, data.len())),
        "{headers}"
    );
    assert!(std::fs::read(&file).unwrap() == data, "the resumed file differs from the upload");
    std::fs::remove_dir_all(&dir).unwrap();
    app.finish().await;
}
