//! The stub backends: one small process answering litmus health checks on many loopback
//! addresses at once, as cheaply as it can (one tokio thread, a fixed answer, no parsing
//! beyond finding the end of the request head). Its own CPU time per request is the
//! yardstick for the prober's CPU time per probe: serving one HTTP exchange is about the
//! least work an exchange can cost.
//!
//! Protocol with the parent: the stub prints `ready` once every listener is bound, runs
//! until its stdin closes, then prints one JSON line with its request count and the CPU
//! and wall time since `ready`. It listens only on 127.0.0.0/8.

use std::cell::Cell;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::usage;

/// litmus_paper's answer for health 100.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Health: 100\r\n\
Content-Length: 34\r\nConnection: close\r\n\r\nHealth: 100\nMeasured Health: 100\n\n";

/// Runs the stub on `addrs` (each with `port`) until stdin closes.
pub fn run(addrs: Vec<Ipv4Addr>, port: u16) -> anyhow::Result<()> {
    usage::raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let served = Rc::new(Cell::new(0u64));
    local.block_on(&runtime, async {
        for addr in &addrs {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket
                .bind(SocketAddr::from((*addr, port)))
                .map_err(|e| anyhow::anyhow!("binding {addr}:{port}: {e}"))?;
            let listener = socket.listen(1024)?;
            let served = served.clone();
            tokio::task::spawn_local(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let served = served.clone();
                    tokio::task::spawn_local(async move {
                        if answer(stream).await.is_ok() {
                            served.set(served.get() + 1);
                        }
                    });
                }
            });
        }
        let (user0, system0) = usage::cpu_times();
        let wall0 = Instant::now();
        println!("ready");
        std::io::stdout().flush()?;
        // Wait for the parent to close stdin, off the runtime's only thread.
        tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for _ in stdin.lock().lines() {}
        })
        .await?;
        let (user, system) = usage::cpu_times();
        let (user, system) = (user - user0, system - system0);
        let report = serde_json::json!({
            "requests": served.get(),
            "cpu_seconds": (user + system).as_secs_f64(),
            "cpu_user_seconds": user.as_secs_f64(),
            "cpu_system_seconds": system.as_secs_f64(),
            "wall_seconds": wall0.elapsed().as_secs_f64(),
            "peak_rss_kib": usage::status_kib("VmHWM"),
        });
        println!("{report}");
        anyhow::Ok(())
    })
}

/// Reads the request head, answers, closes.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 2048];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if len == buf.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    stream.write_all(ANSWER).await?;
    stream.shutdown().await
}
