//! A real HTTPS server for providers' feeds: a test CA made at start
//! (rcgen), a certificate for `localhost` signed by it, and fixed JSON
//! answers that require an API key header.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An HTTPS server on 127.0.0.1 answering `GET path` with `body` when the
/// request carries `header: key`, and 401 otherwise.
pub struct TlsFeed {
    /// Its port (the certificate names `localhost`).
    pub port: u16,
    /// Requests with the right key.
    pub authorized: Arc<AtomicUsize>,
    /// Requests without it.
    pub refused: Arc<AtomicUsize>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsFeed {
    /// Starts serving.
    pub fn start(path: &str, body: &str, header: &str, key: &str) -> TlsFeed {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "DSS e2e test CA");
        let ca_cert = params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
                )
                .expect("server config"),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let authorized = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (path, body, header, key) = (
            path.to_string(),
            Bytes::from(body.to_string()),
            header.to_string(),
            key.to_string(),
        );
        let (ok, no) = (authorized.clone(), refused.clone());
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = tls.clone();
                let (path, body, header, key, ok, no) = (
                    path.clone(),
                    body.clone(),
                    header.clone(),
                    key.clone(),
                    ok.clone(),
                    no.clone(),
                );
                tokio::spawn(async move {
                    let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let good = req.headers().get(header.as_str()).map(|v| v.as_bytes())
                            == Some(key.as_bytes());
                        let status = if !good {
                            no.fetch_add(1, Ordering::SeqCst);
                            401
                        } else if req.uri().path() == path {
                            ok.fetch_add(1, Ordering::SeqCst);
                            200
                        } else {
                            404
                        };
                        let answer = if status == 200 {
                            body.clone()
                        } else {
                            Bytes::new()
                        };
                        async move {
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(answer))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsFeed {
            port,
            authorized,
            refused,
            ca_file,
            _dir: dir,
            runtime: Some(runtime),
        }
    }

    /// The PEM file of the test CA (for `[providers] extra_ca_file`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// `https://localhost:PORT/...`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for TlsFeed {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
