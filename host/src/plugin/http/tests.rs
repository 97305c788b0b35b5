//! The gate's checks, against local HTTP and HTTPS servers.

use super::*;

fn gate(hosts: &[&str]) -> HttpGate {
    let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
    HttpGate::new(client_for_test(), hosts.into(), false, &Limits::default())
}

fn client_for_test() -> HttpClient {
    client()
}

#[test]
fn allow_list_by_host_or_host_and_port() {
    let g = gate(&["feed.example", "127.0.0.1:9000"]);
    assert!(g.check("http://feed.example/x").is_ok());
    assert!(g.check("http://FEED.example:8080/x").is_ok());
    assert!(g.check("http://127.0.0.1:9000/x").is_ok());
    let e = g.check("http://127.0.0.1:9001/x").unwrap_err();
    assert_eq!(
        e,
        FetchError::HostNotAllowed {
            host: "127.0.0.1".into(),
            allow_hosts: g.allow_hosts.clone(),
        }
    );
    assert_eq!(
        e.to_string(),
        "host 127.0.0.1 is not in this provider's allow_hosts (feed.example, 127.0.0.1:9000)"
    );
    assert!(g.check("http://evil.example/x").is_err());
    assert!(g.check("http://feed.example.evil/x").is_err());
    assert_eq!(
        g.check("file:///etc/passwd").unwrap_err().to_string(),
        "file:///etc/passwd: scheme \"file\" is not allowed"
    );
    assert!(g.check("https://feed.example/").is_ok());
    assert!(g
        .check("http://user:pw@feed.example/")
        .unwrap_err()
        .to_string()
        .contains("credentials"));
    assert!(g.check("not a url").is_err());
}

#[test]
fn private_addresses_are_told_apart() {
    for ip in [
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.4",
        "127.0.0.1",
        "169.254.1.1",
        "0.0.0.0",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(!is_public(ip.parse().unwrap()), "{ip}");
    }
    for ip in ["8.8.8.8", "1.1.1.1", "2001:4860::8888", "::ffff:8.8.8.8"] {
        assert!(is_public(ip.parse().unwrap()), "{ip}");
    }
}

#[tokio::test]
async fn host_names_resolving_to_private_addresses_are_refused() {
    let g = gate(&["localhost"]);
    let url = url::Url::parse("http://localhost:9/").unwrap();
    let e = g.resolve(&url).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Private { host, address } if host == "localhost" && address.is_loopback()),
        "{e:?}"
    );
    assert!(e.to_string().contains("allow_private"), "{e}");
    let mut open = gate(&["localhost"]);
    open.allow_private = true;
    assert!(open.resolve(&url).await.unwrap().ip().is_loopback());
    // Literal addresses are the operator's explicit choice.
    let literal = url::Url::parse("http://127.0.0.1:9/").unwrap();
    assert!(g.resolve(&literal).await.is_ok());
}

fn failure(r: Result<Fetched, HttpError>) -> String {
    r.unwrap_err().message().expect("a message").to_string()
}

#[test]
fn request_count_is_bounded() {
    let mut g = gate(&[]);
    g.max_requests = 1;
    assert_eq!(
        failure(g.get("http://a.example/")),
        "host a.example is not in this provider's allow_hosts (empty)"
    );
    assert_eq!(
        g.get("http://a.example/").unwrap_err(),
        HttpError::Failed(FetchError::RequestLimit { max: 1 })
    );
    assert_eq!(
        failure(g.get("http://a.example/")),
        "request limit reached: at most 1 http-get/http-request calls per provider call"
    );
}

#[test]
fn requests_never_wait_past_the_call_deadline() {
    let t = Duration::from_secs(10);
    let now = Instant::now();
    assert_eq!(request_budget(t, None, now), Some((t, false)));
    let far = now + Duration::from_secs(60);
    assert_eq!(request_budget(t, Some(far), now), Some((t, false)));
    let near = now + Duration::from_secs(3);
    assert_eq!(
        request_budget(t, Some(near), now),
        Some((Duration::from_secs(3), true))
    );
    assert_eq!(request_budget(t, Some(now), now), None);
    assert_eq!(
        request_budget(t, Some(now), now + Duration::from_secs(1)),
        None
    );
}

#[test]
fn a_passed_deadline_stops_the_call_before_any_request() {
    let mut g = gate(&["a.example"]);
    g.set_deadline(Some(Instant::now()));
    assert_eq!(g.get("http://a.example/").unwrap_err(), HttpError::Deadline);
    assert_eq!(g.requests, 0);
}

/// A local HTTP(S) server: `/echo` answers with the method, the
/// headers and the body it got (JSON, and an `x-seen` header);
/// `/to?status=N&url=U` redirects.
mod server {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use std::net::SocketAddr;
    use std::sync::Arc;

    pub struct TestCa {
        pub ca_pem: String,
        pub server: Arc<rustls::ServerConfig>,
    }

    /// A CA and a server certificate for `names` signed by it.
    pub fn ca(names: &[&str]) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "DSS test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }

    async fn handle(
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        let query: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        if req.uri().path() == "/to" {
            let status: u16 = query["status"].parse().unwrap();
            return Ok(hyper::Response::builder()
                .status(status)
                .header("location", &query["url"])
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
        let method = req.method().to_string();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").into()))
            .collect();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let seen = serde_json::json!({
            "method": method,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        Ok(hyper::Response::builder()
            .header("content-type", "application/json")
            .header("x-seen", "yes")
            .body(Full::new(Bytes::from(seen.to_string())))
            .unwrap())
    }

    /// Serves on 127.0.0.1 (TLS with `tls`); returns the address.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(handle);
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            // A client refusing the certificate ends
                            // the handshake: nothing to serve.
                            if let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        addr
    }
}

/// A runtime with the servers, and gates made inside it (their
/// requests are made from the test's own, non-async thread).
struct Lab {
    rt: tokio::runtime::Runtime,
    https: SocketAddr,
    http: SocketAddr,
    wrong_name: SocketAddr,
    ca_file: tempfile::NamedTempFile,
}

impl Lab {
    fn new() -> Lab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ca = server::ca(&["localhost"]);
        let other = server::ca(&["wrong.example"]);
        let (https, http, wrong_name) = rt.block_on(async {
            (
                server::start(Some(ca.server.clone())).await,
                server::start(None).await,
                server::start(Some(other.server.clone())).await,
            )
        });
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        // Both test CAs: the wrong-name server's chain is trusted, only
        // its name is wrong.
        std::fs::write(ca_file.path(), format!("{}{}", ca.ca_pem, other.ca_pem)).unwrap();
        Lab {
            rt,
            https,
            http,
            wrong_name,
            ca_file,
        }
    }

    fn gate(&self, trust_test_ca: bool) -> HttpGate {
        let _in = self.rt.enter();
        let client = if trust_test_ca {
            HttpClient::new(Some(self.ca_file.path())).unwrap()
        } else {
            client()
        };
        let hosts: Vec<String> = ["localhost", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert(
            "key".to_string(),
            crate::secrets::SecretSource {
                env: Some("K".into()),
                file: None,
                hosts: None,
            },
        );
        let secrets =
            Secrets::load_with(&secrets, Path::new("."), |_| Some("s3cr3t".to_string())).unwrap();
        let mut g = HttpGate::new(client, hosts.into(), true, &Limits::default())
            .with_secrets(Arc::new(secrets));
        g.max_requests = 100;
        g
    }

    fn url(&self, addr: SocketAddr, scheme: &str, path: &str) -> String {
        format!("{scheme}://localhost:{}{path}", addr.port())
    }
}

fn seen(f: &Fetched) -> serde_json::Value {
    serde_json::from_slice(&f.body).unwrap()
}

#[test]
fn https_is_checked_against_the_roots_and_the_extra_ca() {
    let lab = Lab::new();
    let url = lab.url(lab.https, "https", "/echo");
    let f = lab.gate(true).get(&url).unwrap();
    assert_eq!(f.status, 200);
    assert_eq!(seen(&f)["method"], "GET");
    // SNI and Host carry the name, not the address connected to.
    assert_eq!(
        seen(&f)["headers"]["host"],
        format!("localhost:{}", lab.https.port())
    );
    assert!(f
        .headers
        .contains(&("x-seen".to_string(), "yes".to_string())));
    // The public roots alone do not trust the test CA.
    let e = failure(lab.gate(false).get(&url));
    assert!(e.contains("certificate"), "{e}");
    // A certificate for another name is refused, even from a trusted CA.
    let wrong = lab.url(lab.wrong_name, "https", "/echo");
    let e = failure(lab.gate(true).get(&wrong));
    assert!(e.contains("certificate") && e.contains("Name"), "{e}");
}

#[test]
fn an_unreadable_or_empty_ca_file_is_an_error() {
    let e = HttpClient::new(Some(Path::new("/nonexistent/ca.pem")))
        .err()
        .unwrap();
    assert!(
        matches!(&e, ClientError::CaFile { path, .. } if path == Path::new("/nonexistent/ca.pem")),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("extra_ca_file /nonexistent/ca.pem: "),
        "{e}"
    );
    let empty = tempfile::NamedTempFile::new().unwrap();
    let e = HttpClient::new(Some(empty.path())).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "extra_ca_file {}: no PEM certificate in it",
            empty.path().display()
        )
    );
}

#[test]
fn headers_methods_bodies_and_secrets() {
    let lab = Lab::new();
    let mut g = lab.gate(true);
    let url = lab.url(lab.https, "https", "/echo");
    let req = Request {
        method: Method::Post,
        url: url.clone(),
        headers: vec![
            ("Accept".into(), Value::Text("application/json".into())),
            ("x-api-key".into(), Value::Secret("key".into())),
            ("content-type".into(), Value::Text("text/plain".into())),
        ],
        body: Some(b"query".to_vec()),
    };
    let f = g.request(req.clone()).unwrap();
    let s = seen(&f);
    assert_eq!(s["method"], "POST");
    assert_eq!(s["body"], "query");
    assert_eq!(s["headers"]["x-api-key"], "s3cr3t");
    assert_eq!(s["headers"]["accept"], "application/json");
    // An unknown secret, a reserved header, a body on GET: refused,
    // and the message never carries a secret's value.
    let mut bad = req.clone();
    bad.headers = vec![("x-api-key".into(), Value::Secret("nope".into()))];
    let e = failure(g.request(bad));
    assert!(e.contains("\"nope\"") && e.contains("it has: key"), "{e}");
    let mut bad = req.clone();
    bad.headers = vec![("Host".into(), Value::Text("evil".into()))];
    assert!(failure(g.request(bad)).contains("set by the host"));
    let mut bad = req.clone();
    bad.headers = vec![("x".into(), Value::Text("a\r\nb: c".into()))];
    assert!(failure(g.request(bad)).contains("invalid value"));
    let mut bad = req;
    bad.method = Method::Get;
    assert!(failure(g.request(bad)).contains("only sent with post"));
}

#[test]
fn redirects_keep_secrets_at_home_and_never_go_down_to_http() {
    let lab = Lab::new();
    let mut g = lab.gate(true);
    let redirect = |from: &str, status: u16, to: &str| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &status.to_string())
            .append_pair("url", to)
            .finish();
        format!("{from}/to?{q}")
    };
    let https = lab.url(lab.https, "https", "");
    let http = lab.url(lab.http, "http", "");
    let with_secret = |url: String, method: Method| Request {
        method,
        url,
        headers: vec![
            ("x-api-key".into(), Value::Secret("key".into())),
            ("x-plain".into(), Value::Text("kept".into())),
        ],
        body: (method == Method::Post).then(|| b"q".to_vec()),
    };
    // Same origin: the secret follows.
    let f = g
        .request(with_secret(redirect(&https, 307, "/echo"), Method::Post))
        .unwrap();
    let s = seen(&f);
    assert_eq!(s["headers"]["x-api-key"], "s3cr3t");
    assert_eq!(
        (s["method"].as_str(), s["body"].as_str()),
        (Some("POST"), Some("q"))
    );
    // Another origin (same host, other port): the secret is dropped,
    // the plain header kept; a 303 turns the POST into a bodiless GET.
    let mut g2 = lab.gate(true);
    let from_http = redirect(&http, 303, &format!("{http}/echo"));
    let f = g2.request(with_secret(from_http, Method::Post)).unwrap();
    let s = seen(&f);
    assert_eq!(
        (s["method"].as_str(), s["body"].as_str()),
        (Some("GET"), Some(""))
    );
    let cross = redirect(
        &http,
        302,
        &lab.url(lab.http, "http", "/echo")
            .replace("localhost", "127.0.0.1"),
    );
    let f = g2.request(with_secret(cross, Method::Get)).unwrap();
    let s = seen(&f);
    assert!(s["headers"].get("x-api-key").is_none(), "{s}");
    assert_eq!(s["headers"]["x-plain"], "kept");
    // https never goes down to http.
    let down = redirect(&https, 302, &format!("{http}/echo"));
    let e = failure(g.request(with_secret(down, Method::Get)));
    assert!(e.contains("never goes down"), "{e}");
}
