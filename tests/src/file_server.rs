//! A real HTTP server with fixed answers, for providers and FFmpeg to
//! fetch from.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A real HTTP server on 127.0.0.1 with fixed answers by path, counting
/// the requests it gets.
pub struct FileServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    routes: Arc<Mutex<Vec<(String, Answer)>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One fixed answer.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this body.
    Body(&'static str, Vec<u8>),
    /// A redirect to this URL.
    Redirect(u16, String),
    /// 200 with this body, after this delay (a slow upstream).
    Slow(Duration, &'static str, Vec<u8>),
}

impl FileServer {
    /// Serves `routes` (path → answer); other paths get 404.
    pub fn start(routes: Vec<(&str, Answer)>) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let addr = server.server_addr().to_ip().expect("ip addr").to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let routes: Arc<Mutex<Vec<(String, Answer)>>> = Arc::new(Mutex::new(
            routes
                .into_iter()
                .map(|(p, a)| (p.to_string(), a))
                .collect(),
        ));
        let thread = {
            let (server, hits, routes) = (server.clone(), hits.clone(), routes.clone());
            std::thread::spawn(move || {
                for mut req in server.incoming_requests() {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let mut sink = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut sink);
                    let answer = routes
                        .lock()
                        .expect("routes")
                        .iter()
                        .find(|(p, _)| p == req.url())
                        .map(|(_, a)| a.clone());
                    let _ = match answer {
                        Some(Answer::Body(ct, body)) => {
                            req.respond(tiny_http::Response::from_data(body).with_header(
                                tiny_http::Header::from_bytes("Content-Type", ct).expect("header"),
                            ))
                        }
                        Some(Answer::Slow(delay, ct, body)) => {
                            std::thread::sleep(delay);
                            req.respond(tiny_http::Response::from_data(body).with_header(
                                tiny_http::Header::from_bytes("Content-Type", ct).expect("header"),
                            ))
                        }
                        Some(Answer::Redirect(code, to)) => req.respond(
                            tiny_http::Response::empty(code).with_header(
                                tiny_http::Header::from_bytes("Location", to.as_bytes())
                                    .expect("header"),
                            ),
                        ),
                        None => req.respond(tiny_http::Response::empty(404)),
                    };
                }
            })
        };
        FileServer {
            addr,
            hits,
            routes,
            server,
            thread: Some(thread),
        }
    }

    /// Answers `path` with `answer` from now on.
    pub fn set(&self, path: &str, answer: Answer) {
        let mut routes = self.routes.lock().expect("routes");
        routes.retain(|(p, _)| p != path);
        routes.push((path.to_string(), answer));
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
