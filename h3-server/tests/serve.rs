//! The server library with a quinn and h3 client, in-process on loopback, each test in a
//! network namespace of its own (needs root).

mod isolated;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Buf as _, Bytes};
use h3_server::{Counters, Identity, Limits, Options, Server, Tickets};
use http::{Method, Request, StatusCode};
use quic_lb_quinn::{CidIssuer, IssuerConfig};
use quinn::{ClientConfig, Endpoint, crypto::rustls::QuicClientConfig};
use router_common::quic_lb::ConfigParams;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const SERVER_NAME: &str = "h3.quic-router.test";
/// How long anything here may take: generous, for loaded CI machines.
const WITHIN: Duration = Duration::from_secs(10);

struct Certificate {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn certificate() -> Certificate {
    let certified =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).expect("certificate");
    Certificate {
        cert: certified.cert.der().clone(),
        key: certified.key_pair.serialize_der(),
    }
}

fn options(certificate: &Certificate, name: &str) -> Options {
    Options {
        name: name.to_owned(),
        issuer: CidIssuer::new(IssuerConfig {
            params: ConfigParams::new(0, 2, 6),
            key: None,
            server_id: vec![0x0a, 0x01],
        })
        .expect("issuer"),
        identity: Identity::new(
            vec![certificate.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificate.key.clone())),
        ),
        tickets: Tickets::Stateful,
        token_prefix: true,
        retry: false,
        limits: Limits::default(),
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("an address")
}

fn client(certificate: &Certificate) -> Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.cert.clone()).expect("trust");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![h3_server::ALPN.to_vec()];
    let mut endpoint = Endpoint::client(loopback()).expect("client endpoint");
    endpoint.set_default_client_config(ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).expect("QUIC TLS"),
    )));
    endpoint
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An HTTP/3 connection to `server`; its driver runs until the connection ends.
async fn connect(client: &Endpoint, server: SocketAddr) -> Result<SendRequest, String> {
    let connection = client
        .connect(server, SERVER_NAME)
        .map_err(|err| err.to_string())?
        .await
        .map_err(|err| err.to_string())?;
    let (mut driver, send_request) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(async move { driver.wait_idle().await });
    Ok(send_request)
}

/// One request: the answer's status, `server-name` header and body.
async fn request(
    send_request: &mut SendRequest,
    method: Method,
    path: &str,
) -> (StatusCode, Option<String>, String) {
    let request = Request::builder()
        .method(method)
        .uri(format!("https://{SERVER_NAME}{path}"))
        .body(())
        .expect("request");
    let mut stream = send_request.send_request(request).await.expect("send");
    stream.finish().await.expect("finish the request");
    let response = stream.recv_response().await.expect("response");
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.expect("body") {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    let name = response
        .headers()
        .get("server-name")
        .map(|value| value.to_str().expect("ASCII").to_owned());
    (
        response.status(),
        name,
        String::from_utf8(body).expect("UTF-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_get_gets_the_name_and_other_methods_405() {
    isolated::enter().expect("a network namespace of the test's own");
    let certificate = certificate();
    let server = Server::bind(options(&certificate, "alpha"), &[loopback()]).expect("server");
    let client = client(&certificate);
    let mut send_request = connect(&client, server.local_addrs()[0])
        .await
        .expect("connect");
    for path in ["/", "/any/path?x=1"] {
        assert_eq!(
            request(&mut send_request, Method::GET, path).await,
            (
                StatusCode::OK,
                Some("alpha".to_owned()),
                "alpha\n".to_owned()
            )
        );
    }
    let (status, _, body) = request(&mut send_request, Method::POST, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "")
    );
    let counters = server
        .wait_for(|c| c.connections == 1, WITHIN)
        .await
        .expect("handshake counted");
    assert_eq!(
        counters,
        Counters {
            connections: 1,
            requests: 2,
            ..Counters::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    isolated::enter().expect("a network namespace of the test's own");
    let certificate = certificate();
    let mut options = options(&certificate, "alpha");
    options.limits.max_connections = 1;
    let server = Server::bind(options, &[loopback()]).expect("server");
    let client = client(&certificate);
    let addr = server.local_addrs()[0];
    let mut first = connect(&client, addr).await.expect("first connection");
    let refused = connect(&client, addr).await.err().expect("refused");
    assert!(refused.contains("refused"), "{refused}");
    // The first connection still works.
    let (status, ..) = request(&mut first, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    // The server counts the refusal after it sends it: wait for the count itself.
    let counters = server
        .wait_for(|c| c.refused == 1, WITHIN)
        .await
        .expect("the refusal counted");
    assert_eq!(counters.connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_an_unvalidated_client_is_retried_once() {
    isolated::enter().expect("a network namespace of the test's own");
    let certificate = certificate();
    let mut options = options(&certificate, "alpha");
    options.retry = true;
    let server = Server::bind(options, &[loopback()]).expect("server");
    let client = client(&certificate);
    let mut send_request = connect(&client, server.local_addrs()[0])
        .await
        .expect("connect after a Retry");
    let (status, ..) = request(&mut send_request, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    let counters = server
        .wait_for(|c| c.connections == 1, WITHIN)
        .await
        .expect("handshake counted");
    assert_eq!((counters.retries, counters.validated), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_listen_on_both_families_and_refuse_bad_names() {
    isolated::enter().expect("a network namespace of the test's own");
    let certificate = certificate();
    let addrs = [loopback(), "[::1]:0".parse().expect("an address")];
    let server = Server::bind(options(&certificate, "beta"), &addrs).expect("server");
    let local = server.local_addrs();
    assert!(local[0].is_ipv4() && local[1].is_ipv6(), "{local:?}");
    for bad in ["", "two words", "caf\u{e9}"] {
        let err = Server::bind(options(&certificate, bad), &[loopback()])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("server name"), "{err}");
    }
    let err = Server::on_sockets(options(&certificate, "beta"), Vec::new())
        .err()
        .expect("refused");
    assert_eq!(err.to_string(), "no socket to serve on");
}

#[test]
fn identities_come_from_pem_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certified =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write");
    assert!(Identity::from_pem_files(&cert, &key).is_ok());
    let err = Identity::from_pem_files(&key, &key).err().expect("no cert");
    assert!(err.to_string().contains("holds no certificate"), "{err}");
    let absent = dir.path().join("absent.pem");
    let err = Identity::from_pem_files(&absent, &key)
        .err()
        .expect("absent");
    assert!(err.to_string().contains("absent.pem"), "{err}");
}
