//! A write deadline for a client connection: a client that stops reading its answers (so
//! that the server's writes stall) has its connection closed after `limit`, instead of
//! holding a connection slot for as long as it likes. hyper bounds the reading of request
//! heads itself; this bounds the writing of answers.
//!
//! It only measures how long a write or flush has been waiting; it never changes the bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, whose writes and flushes fail with `TimedOut` once one has waited `limit`.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write or flush is waiting; disarmed by any progress.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            limit,
            timer: None,
        }
    }

    /// Turns a pending write into a timeout once it has waited too long.
    fn waiting<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.timer = None;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {limit:?}"),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.waiting(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.waiting(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.waiting(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.waiting(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_times_out() {
        // A pipe with room for 8 bytes that nobody reads.
        let (client, _server) = tokio::io::duplex(8);
        let mut w = WriteDeadline::new(client, Duration::from_secs(5));
        w.write_all(b"12345678").await.unwrap();
        let started = tokio::time::Instant::now();
        let e = w.write_all(b"more").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        // The reader takes 3 s per 4 bytes: each stall is shorter than the limit, the whole
        // answer takes 24 s.
        let (client, mut reader) = tokio::io::duplex(4);
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4];
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
            }
        });
        let mut w = WriteDeadline::new(client, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        w.write_all(&[7u8; 32]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(read.await.unwrap(), vec![7u8; 32]);
        assert!(started.elapsed() >= Duration::from_secs(21));
    }
}
