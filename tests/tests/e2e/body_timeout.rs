//! #12, item 8: a request body must arrive within the read timeout; a client that
//! trickles it is answered 408, so it holds neither a connection nor a task.

use caguard::functions::{App, BODY_READ_TIMEOUT, router};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    // Unconfigured: the body is read (or not) before any handler runs.
    let app: App = Arc::new(Err("caguard.toml missing (test)".into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(app)).await });
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /api/GraphNotifications HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"value\":";
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Nothing more arrives; past the read timeout the server answers and closes.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BODY_READ_TIMEOUT * 2, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server answered within twice the read timeout");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}
