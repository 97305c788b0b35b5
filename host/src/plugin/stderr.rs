//! A guest's stderr: an in-memory pipe that never blocks, never fails and
//! keeps only the last [`StderrTail::capacity`] bytes written (where a
//! panic message is), counting the rest. A guest may print as much as it
//! likes; the host holds a bounded amount per call.
//!
//! (wasmtime-wasi's `MemoryOutputPipe` traps the guest once its capacity is
//! reached, so a provider printing debug output would die of it.)

use hyper::body::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The last bytes a guest wrote to stderr. Clones share the buffer.
#[derive(Clone)]
pub struct StderrTail {
    capacity: usize,
    inner: Arc<Mutex<Tail>>,
}

#[derive(Default)]
struct Tail {
    /// Holds at most twice the capacity; the last `capacity` bytes count.
    buf: Vec<u8>,
    /// Bytes written but not kept.
    dropped: u64,
}

impl StderrTail {
    /// A pipe keeping the last `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        StderrTail {
            capacity,
            inner: Arc::default(),
        }
    }

    /// How many bytes are kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn push(&self, bytes: &[u8]) {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if bytes.len() >= self.capacity {
            let skip = bytes.len() - self.capacity;
            t.dropped += (t.buf.len() + skip) as u64;
            t.buf.clear();
            t.buf.extend_from_slice(&bytes[skip..]);
            return;
        }
        t.buf.extend_from_slice(bytes);
        // Compact once per `capacity` bytes written: amortised O(1).
        if t.buf.len() > 2 * self.capacity {
            let excess = t.buf.len() - self.capacity;
            t.buf.drain(..excess);
            t.dropped += excess as u64;
        }
    }

    /// The kept bytes, and how many earlier bytes were not kept.
    pub fn contents(&self) -> (Vec<u8>, u64) {
        let t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let start = t.buf.len().saturating_sub(self.capacity);
        (t.buf[start..].to_vec(), t.dropped + start as u64)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(self.capacity.max(4096))
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_counts_the_rest() {
        let t = StderrTail::new(8);
        t.push(b"abc");
        assert_eq!(t.contents(), (b"abc".to_vec(), 0));
        t.push(b"defgh");
        assert_eq!(t.contents(), (b"abcdefgh".to_vec(), 0));
        t.push(b"ij");
        assert_eq!(t.contents(), (b"cdefghij".to_vec(), 2));
        for _ in 0..100 {
            t.push(b"0123");
        }
        assert_eq!(t.contents(), (b"01230123".to_vec(), 402));
        // A write larger than the capacity keeps its end.
        t.push(&[b'x'; 20]);
        assert_eq!(t.contents(), (b"xxxxxxxx".to_vec(), 422));
        assert!(t.inner.lock().unwrap().buf.len() <= 16);
    }

    #[test]
    fn a_flood_holds_bounded_memory() {
        let t = StderrTail::new(64 * 1024);
        let line = [b'e'; 1000];
        for _ in 0..10_000 {
            t.push(&line);
        }
        assert!(t.inner.lock().unwrap().buf.len() <= 128 * 1024);
        let (kept, dropped) = t.contents();
        assert_eq!(kept.len(), 64 * 1024);
        assert_eq!(kept.len() as u64 + dropped, 10_000_000);
    }
}
