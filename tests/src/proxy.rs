//! A TCP proxy that can be cut: the fault of a network partition between
//! a host and its store (connections stay open, nothing gets through).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Forwards `127.0.0.1:port` to `127.0.0.1:upstream` while not blocked.
pub struct Proxy {
    /// Where it listens.
    pub port: u16,
    blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn wait_open(blocked: &AtomicBool, stop: &AtomicBool) -> bool {
    while blocked.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !stop.load(Ordering::SeqCst)
}

fn pump(mut from: TcpStream, mut to: TcpStream, blocked: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !wait_open(&blocked, &stop) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        // Data read just before the cut is held, not delivered.
        if !wait_open(&blocked, &stop) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Starts forwarding to `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let blocked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (blocked.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(down) = conn else { continue };
                let (b, s) = (b.clone(), s.clone());
                std::thread::spawn(move || {
                    if !wait_open(&b, &s) {
                        return;
                    }
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let (down2, up2) = match (down.try_clone(), up.try_clone()) {
                        (Ok(d), Ok(u)) => (d, u),
                        _ => return,
                    };
                    let (b2, s2) = (b.clone(), s.clone());
                    std::thread::spawn(move || pump(down2, up2, b2, s2));
                    pump(up, down, b, s);
                });
            }
        });
        Proxy {
            port,
            blocked,
            stop,
        }
    }

    /// Cuts (`true`) or restores the link.
    pub fn block(&self, on: bool) {
        self.blocked.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.blocked.store(false, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
