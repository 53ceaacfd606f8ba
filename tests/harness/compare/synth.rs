//! The synthetic exporter: many scrape targets (one listener each) in the harness process,
//! all serving the same body, re-rendered once a second, and counting what they served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::body::{Body, Exposition};
use crate::exporter::{TEXT_CONTENT_TYPE, serve_http1};

/// How often the values change (the scenarios scrape every second).
const RENDER_INTERVAL: Duration = Duration::from_secs(1);

/// Bodies and samples served, by one target or all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Responses sent.
    pub bodies: u64,
    /// Sample lines in them.
    pub samples: u64,
}

impl Served {
    /// What was served since `earlier`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            bodies: self.bodies - earlier.bodies,
            samples: self.samples - earlier.samples,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    bodies: AtomicU64,
    samples: AtomicU64,
}

/// Whether the targets still serve samples (see [`SyntheticExporter::pause`]).
#[derive(Debug, Default)]
struct Paused(AtomicBool);

/// `targets` listeners on 127.0.0.1 serving one shared, changing body of `series` samples.
/// The listeners and the renderer stop when this is dropped.
#[derive(Debug)]
pub struct SyntheticExporter {
    addrs: Vec<SocketAddr>,
    counters: Vec<Arc<Counters>>,
    paused: Arc<Paused>,
    tasks: Vec<JoinHandle<()>>,
}

impl SyntheticExporter {
    /// Binds the listeners and starts serving the first body at once.
    ///
    /// # Errors
    /// When a loopback port cannot be bound.
    pub async fn start(targets: usize, series: usize) -> Result<Self> {
        let mut exposition = Exposition::new(series);
        let (sender, body) = watch::channel(Arc::new(exposition.render()));
        let mut tasks = vec![tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RENDER_INTERVAL);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                // One render a second for all targets keeps the exporter cheap next to the agents.
                let next = Arc::new(exposition.render());
                if sender.send(next).is_err() {
                    break;
                }
            }
        })];
        let paused = Arc::new(Paused::default());
        let mut addrs = Vec::with_capacity(targets);
        let mut counters = Vec::with_capacity(targets);
        for _ in 0..targets {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .context("bind a synthetic target")?;
            addrs.push(listener.local_addr().context("synthetic target address")?);
            let port_counters = Arc::new(Counters::default());
            counters.push(Arc::clone(&port_counters));
            let (body, paused) = (body.clone(), Arc::clone(&paused));
            tasks.push(tokio::spawn(serve_http1(listener, move |request| {
                answer(
                    request,
                    body.clone(),
                    Arc::clone(&port_counters),
                    Arc::clone(&paused),
                )
            })));
        }
        Ok(Self {
            addrs,
            counters,
            paused,
            tasks,
        })
    }

    /// The targets as `127.0.0.1:PORT`, for `static_configs`.
    pub fn targets(&self) -> Vec<String> {
        self.addrs.iter().map(ToString::to_string).collect()
    }

    /// From now on every target answers 503 and serves no samples, so an agent can deliver
    /// what it has before it is stopped; returns what was served in all.
    pub async fn pause(&self) -> Served {
        self.paused.0.store(true, Ordering::SeqCst);
        // A response that saw the flag unset counts itself without awaiting anything in
        // between; this leaves it ample time to finish before the totals are read.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.served()
    }

    /// What each target has served so far, in the order of [`SyntheticExporter::targets`].
    pub fn served_per_target(&self) -> Vec<Served> {
        self.counters
            .iter()
            .map(|counters| Served {
                bodies: counters.bodies.load(Ordering::SeqCst),
                samples: counters.samples.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// What all targets have served so far.
    pub fn served(&self) -> Served {
        self.served_per_target()
            .into_iter()
            .fold(Served::default(), |total, one| Served {
                bodies: total.bodies + one.bodies,
                samples: total.samples + one.samples,
            })
    }
}

impl Drop for SyntheticExporter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn answer(
    _request: Request<Incoming>,
    body: watch::Receiver<Arc<Body>>,
    counters: Arc<Counters>,
    paused: Arc<Paused>,
) -> Result<Response<Full<bytes::Bytes>>, http::Error> {
    if paused.0.load(Ordering::SeqCst) {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Full::default());
    }
    let body = Arc::clone(&body.borrow());
    counters.bodies.fetch_add(1, Ordering::SeqCst);
    counters.samples.fetch_add(body.samples, Ordering::SeqCst);
    Response::builder()
        .header(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)
        .body(Full::new(body.bytes.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpClient;

    #[tokio::test]
    async fn every_target_serves_the_body_and_counts_it() {
        let exporter = SyntheticExporter::start(3, 50).await.expect("starts");
        let client = HttpClient::new();
        let targets = exporter.targets();
        assert_eq!(targets.len(), 3);
        let mut bodies = Vec::new();
        for target in &targets {
            let response = client
                .get(&format!("http://{target}/metrics"))
                .await
                .expect("scrape");
            assert_eq!(response.status, 200);
            assert_eq!(response.headers[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
            bodies.push(response.text());
        }
        let again = client
            .get(&format!("http://{}/metrics", targets[0]))
            .await
            .expect("second scrape");
        assert!(bodies[0].lines().filter(|l| !l.starts_with('#')).count() == 50);
        let per_target = exporter.served_per_target();
        assert_eq!(
            per_target[0],
            Served {
                bodies: 2,
                samples: 100
            }
        );
        assert_eq!(
            per_target[1],
            Served {
                bodies: 1,
                samples: 50
            }
        );
        let total = exporter.served();
        assert_eq!(
            total,
            Served {
                bodies: 4,
                samples: 200
            }
        );
        assert_eq!(
            total.since(per_target[0]),
            Served {
                bodies: 2,
                samples: 100
            }
        );
        assert!(again.status == 200);

        assert_eq!(exporter.pause().await, total);
        let paused = client
            .get(&format!("http://{}/metrics", targets[1]))
            .await
            .expect("answered");
        assert_eq!(paused.status, 503);
        assert_eq!(exporter.served(), total, "nothing served while paused");
    }
}
