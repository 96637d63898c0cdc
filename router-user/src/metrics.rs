//! Prometheus metrics (`--metrics-addr`): the same counters as `quic-router stats`, read from
//! the pinned maps at each scrape.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, text::encode},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use router_common::counters::{LocalOutcome, Outcome};
use tokio::net::{TcpListener, TcpStream};

use crate::{health::Health, pin::RouterPaths, router::PinnedRouter, runstate::RunState};

/// Reads the router's pinned maps (and run state, for backend names) at each scrape.
#[derive(Debug)]
pub struct RouterCollector {
    pub paths: RouterPaths,
}

impl Collector for RouterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A scrape during a restart finds no maps: report nothing rather than fail.
        let pinned = PinnedRouter::new(&self.paths);
        let Ok(counters) = pinned.counters() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "quic_router_packets",
            "Packets by routing outcome",
            None,
            MetricType::Counter,
        )?;
        for &outcome in Outcome::ALL {
            let labels = [("outcome", outcome.name())];
            ConstCounter::new(counters.outcome(outcome)).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "quic_router_local_datagrams",
            "Datagrams for local workers by socket selection outcome",
            None,
            MetricType::Counter,
        )?;
        for &outcome in LocalOutcome::ALL {
            let labels = [("outcome", outcome.name())];
            ConstCounter::new(counters.local(outcome)).encode(family.encode_family(&labels)?)?;
        }
        let state = RunState::load(&self.paths.state()).ok();
        if let Some(state) = &state {
            let mut family = encoder.encode_descriptor(
                "quic_router_routing_digest",
                "The applied config's routing digest (listeners, QUIC-LB parameters, backends; keys excluded), as a label",
                None,
                MetricType::Gauge,
            )?;
            let digest = escape_label(&state.routing_digest);
            ConstGauge::new(1).encode(family.encode_family(&[("digest", digest.as_str())])?)?;
        }
        if let Some(state) = state.as_ref().filter(|s| !s.health.is_empty()) {
            let mut family = encoder.encode_descriptor(
                "quic_router_backend_up",
                "1 while a checked backend answers its health checks, 0 while it is down (unchecked backends are not listed)",
                None,
                MetricType::Gauge,
            )?;
            for (name, record) in &state.health {
                let up = match record.health {
                    Health::Up => 1,
                    Health::Down => 0,
                    Health::Unchecked => continue,
                };
                let name = escape_label(name);
                ConstGauge::new(up).encode(family.encode_family(&[("backend", name.as_str())])?)?;
            }
        }
        if let Some(record) = state.as_ref().and_then(|s| s.announce.as_ref()) {
            let family = encoder.encode_descriptor(
                "quic_router_vips_announced",
                "VIPs whose routes the controller keeps for the BGP daemon ([announce]); 0 while withdrawn",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(record.routes.len() as i64).encode(family)?;
        }
        let names = state.map(|s| s.backends).unwrap_or_default();
        for (metric, help) in [
            (
                "quic_router_backend_packets",
                "Packets delivered to each backend",
            ),
            (
                "quic_router_backend_bytes",
                "Octets delivered to each backend",
            ),
        ] {
            let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Counter)?;
            for backend in &names {
                let delivered = counters.backend(backend.index);
                let value = if metric.ends_with("bytes") {
                    delivered.bytes
                } else {
                    delivered.packets
                };
                let name = escape_label(&backend.name);
                let labels = [("backend", name.as_str())];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Ok(epoch) = pinned.epoch() {
            let family = encoder.encode_descriptor(
                "quic_router_config_epoch",
                "Config changes applied",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(epoch)).encode(family)?;
        }
        Ok(())
    }
}

/// `value` as the text format quotes a label value: backslash, double quote and newline
/// escaped. Backend names cannot hold them, but the run state is a file.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open, whatever it does.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `GET /metrics` (any path) on `listener` until the task is dropped, each connection
/// bounded in time ([`serve::accept_loop`] bounds how many at once).
pub async fn serve(listener: TcpListener, collector: RouterCollector) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let registry = Arc::new(registry);
    let listener = &listener;
    crate::serve::accept_loop(
        "metrics",
        MAX_CONNECTIONS,
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        |stream| scrape(stream, registry.clone()),
    )
    .await;
}

/// Answers one connection's requests with the metrics.
async fn scrape(stream: TcpStream, registry: Arc<Registry>) {
    let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
        let registry = registry.clone();
        async move {
            let mut body = String::new();
            let response = match encode(&mut body, &registry) {
                Ok(()) => Response::builder()
                    .header(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .body(Full::new(Bytes::from(body))),
                Err(_) => Response::builder()
                    .status(500)
                    .body(Full::new(Bytes::new())),
            };
            Ok::<_, Infallible>(response.expect("a valid response"))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
}

#[cfg(test)]
mod tests {
    use super::escape_label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("alpha-1.b_2"), "alpha-1.b_2");
        assert_eq!(escape_label("q\"x"), "q\\\"x");
        assert_eq!(escape_label("a\\b\nc"), "a\\\\b\\nc");
    }
}
