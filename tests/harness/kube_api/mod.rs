//! An in-process Kubernetes API server for tests: HTTPS (rustls, a CA made
//! at run time), bearer token checked, serving pods (list with field
//! selectors and pagination, chunked watch streams with resourceVersion,
//! bookmarks and 410 Gone after compaction), ReplicaSets and Jobs; faults are
//! injectable (500s, 410 Gone, dropped connections). kube-rs reaches it
//! through a kubeconfig, exactly as it reaches a cluster.
//!
//! One implementation, two users: the harness crate (real-binary tests) and
//! the agent's unit tests, which include this file with `#[path]`; so it
//! depends only on crates both have.

#![allow(
    clippy::unwrap_used,
    reason = "a test server: a broken fixture or socket should panic loudly"
)]

/// JSON builders of API objects.
pub mod objects;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

pub use objects::PodFixture;

type Body = BoxBody<Bytes, std::io::Error>;

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// URL path.
    pub path: String,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
}

impl SeenRequest {
    /// True for `?watch=true` requests.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }
}

/// A fault applied to the next matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next request (any) answers 500.
    Status500,
    /// The next watch answers with an ERROR event 410 Gone.
    Gone,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// (namespace, name) -> pod JSON (with its resourceVersion).
    pods: BTreeMap<(String, String), Value>,
    /// Watch history: (rv, type, object); trimmed by `compact`.
    history: VecDeque<(u64, &'static str, Value)>,
    /// Events before this rv are gone (410 on resume from older).
    compacted: u64,
    replica_sets: HashMap<(String, String), Value>,
    jobs: HashMap<(String, String), Value>,
    seen: Vec<SeenRequest>,
    faults: VecDeque<Fault>,
}

/// The running server; dropping it stops it.
pub struct KubeApi {
    /// Where it listens (127.0.0.1, random port).
    pub addr: SocketAddr,
    ca_pem: String,
    token: String,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(u64, &'static str, Value)>,
    drop_tx: broadcast::Sender<()>,
    bookmark_every: Duration,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key.into())
    .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

impl KubeApi {
    /// Starts a server that accepts `Bearer <token>`.
    pub async fn start(token: &str) -> Self {
        Self::start_with(token, Duration::from_millis(500)).await
    }

    /// Same, sending a bookmark on open watches every `bookmark_every`.
    pub async fn start_with(token: &str, bookmark_every: Duration) -> Self {
        let (ca_pem, config) = tls(&["127.0.0.1", "localhost"]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            rv: 100,
            ..State::default()
        }));
        let (events, _) = broadcast::channel(65_536);
        let (drop_tx, _) = broadcast::channel(16);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let ctx = Ctx {
            token: token.to_owned(),
            state: state.clone(),
            events: events.clone(),
            drop_tx: drop_tx.clone(),
            bookmark_every,
        };
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let ctx = ctx.clone();
                        async move { Ok::<_, std::convert::Infallible>(ctx.handle(req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem,
            token: token.to_owned(),
            state,
            events,
            drop_tx,
            bookmark_every,
            dir: tempfile::tempdir().unwrap(),
            task,
        }
    }

    /// Writes a kubeconfig pointing at this server (CA file + token).
    pub fn kubeconfig(&self) -> PathBuf {
        let ca = self.dir.path().join("ca.pem");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        let path = self.dir.path().join("kubeconfig");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: agent\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: agent\n",
            port = self.addr.port(),
            ca = ca.display(),
            token = self.token,
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn record(&self, kind: &'static str, mut obj: Value) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        if kind == "DELETED" {
            st.pods.remove(&key);
        } else {
            st.pods.insert(key, obj.clone());
        }
        st.history.push_back((rv, kind, obj.clone()));
        // Send under the lock so watchers see events in rv order.
        let _ = self.events.send((rv, kind, obj));
    }

    /// Adds (or replaces) a pod: ADDED / MODIFIED.
    pub fn put_pod(&self, pod: &PodFixture) {
        let exists = self
            .state
            .lock()
            .unwrap()
            .pods
            .contains_key(&(pod.namespace.clone(), pod.name.clone()));
        self.record(if exists { "MODIFIED" } else { "ADDED" }, pod.json());
    }

    /// Adds many pods without watch events (initial cluster state).
    pub fn seed_pods(&self, pods: impl IntoIterator<Item = PodFixture>) {
        let mut st = self.state.lock().unwrap();
        for pod in pods {
            st.rv += 1;
            let mut obj = pod.json();
            obj["metadata"]["resourceVersion"] = Value::String(st.rv.to_string());
            st.pods.insert((pod.namespace, pod.name), obj);
        }
        st.compacted = st.rv;
    }

    /// Deletes a pod: DELETED.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let obj = self
            .state
            .lock()
            .unwrap()
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned();
        if let Some(obj) = obj {
            self.record("DELETED", obj);
        }
    }

    /// Serves a ReplicaSet or Job for owner lookups.
    pub fn put_owner(&self, obj: Value) {
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let mut st = self.state.lock().unwrap();
        match obj["kind"].as_str() {
            Some("ReplicaSet") => st.replica_sets.insert(key, obj),
            _ => st.jobs.insert(key, obj),
        };
    }

    /// Forgets the watch history: resuming from an older rv gets 410 Gone.
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.history.clear();
        st.compacted = st.rv;
    }

    /// Queues a fault for the next matching request.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Aborts every open watch connection (as a restarting API server would).
    pub fn drop_watches(&self) {
        let _ = self.drop_tx.send(());
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The interval of bookmarks on open watches.
    pub fn bookmark_every(&self) -> Duration {
        self.bookmark_every
    }
}

#[derive(Clone)]
struct Ctx {
    token: String,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(u64, &'static str, Value)>,
    drop_tx: broadcast::Sender<()>,
    bookmark_every: Duration,
}

fn full(code: u16, body: &Value) -> http::Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap());
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(bytes).map_err(|never| match never {}).boxed())
        .unwrap()
}

/// `spec.nodeName=<n>` (the only field selector the agent uses; others are
/// refused like a real server refuses unsupported fields).
fn node_filter(query: &HashMap<String, String>) -> Result<Option<String>, String> {
    let Some(sel) = query.get("fieldSelector").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match sel.split_once('=') {
        Some(("spec.nodeName", node)) => Ok(Some(node.trim_start_matches('=').to_owned())),
        _ => Err(format!("field label not supported: {sel}")),
    }
}

fn on_node(pod: &Value, node: Option<&str>) -> bool {
    node.is_none_or(|n| pod["spec"]["nodeName"].as_str() == Some(n))
}

impl Ctx {
    async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        let path = req.uri().path().to_owned();
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let seen = SeenRequest {
            path: path.clone(),
            query: query.clone(),
        };
        let authorized = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", self.token));
        let fault = {
            let mut st = self.state.lock().unwrap();
            st.seen.push(seen.clone());
            match st.faults.front() {
                Some(Fault::Status500) => st.faults.pop_front(),
                Some(Fault::Gone) if seen.is_watch() => st.faults.pop_front(),
                _ => None,
            }
        };
        if !authorized {
            return full(401, &objects::status(401, "Unauthorized", "Unauthorized"));
        }
        if fault == Some(Fault::Status500) {
            return full(
                500,
                &objects::status(500, "InternalError", "etcdserver: request timed out"),
            );
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "pods"] => {
                let node = match node_filter(&query) {
                    Ok(n) => n,
                    Err(msg) => return full(400, &objects::status(400, "BadRequest", &msg)),
                };
                if seen.is_watch() {
                    self.watch(&query, node, fault == Some(Fault::Gone))
                } else {
                    self.list(&query, node.as_deref())
                }
            }
            ["apis", "apps", "v1", "namespaces", ns, "replicasets", name] => self.get(
                |st| {
                    st.replica_sets
                        .get(&((*ns).to_owned(), (*name).to_owned()))
                        .cloned()
                },
                "replicasets",
                name,
            ),
            ["apis", "batch", "v1", "namespaces", ns, "jobs", name] => self.get(
                |st| {
                    st.jobs
                        .get(&((*ns).to_owned(), (*name).to_owned()))
                        .cloned()
                },
                "jobs",
                name,
            ),
            _ => full(
                404,
                &objects::status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
        }
    }

    fn get(
        &self,
        find: impl FnOnce(&State) -> Option<Value>,
        resource: &str,
        name: &str,
    ) -> http::Response<Body> {
        match find(&self.state.lock().unwrap()) {
            Some(obj) => full(200, &obj),
            None => full(
                404,
                &objects::status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
            ),
        }
    }

    /// `v1.PodList`, paginated by `limit`/`continue` (an offset here).
    fn list(&self, query: &HashMap<String, String>, node: Option<&str>) -> http::Response<Body> {
        let st = self.state.lock().unwrap();
        let offset: usize = query
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let matching: Vec<&Value> = st.pods.values().filter(|p| on_node(p, node)).collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|p| (*p).clone())
            .collect();
        let next = offset + page.len();
        let mut metadata = serde_json::json!({"resourceVersion": st.rv.to_string()});
        if next < matching.len() {
            metadata["continue"] = Value::String(next.to_string());
            metadata["remainingItemCount"] = Value::from(matching.len() - next);
        }
        full(
            200,
            &serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": page}),
        )
    }

    /// A chunked stream of watch events, newline-delimited JSON.
    fn watch(
        &self,
        query: &HashMap<String, String>,
        node: Option<String>,
        gone: bool,
    ) -> http::Response<Body> {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1024);
        let line = |kind: &str, obj: &Value| {
            let mut b =
                serde_json::to_vec(&serde_json::json!({"type": kind, "object": obj})).unwrap();
            b.push(b'\n');
            Ok(Frame::data(Bytes::from(b)))
        };
        // Replay under the lock, subscribing before releasing it, so no event is missed or doubled.
        let (replay, mut live, current) = {
            let st = self.state.lock().unwrap();
            if gone || (from != 0 && from < st.compacted) {
                let status = objects::status(
                    410,
                    "Expired",
                    &format!("too old resource version: {from} ({})", st.compacted),
                );
                let _ = tx.try_send(line("ERROR", &status));
                drop(tx);
                return stream_response(rx);
            }
            let replay: Vec<_> = st
                .history
                .iter()
                .filter(|(rv, _, obj)| *rv > from && on_node(obj, node.as_deref()))
                .cloned()
                .collect();
            (replay, self.events.subscribe(), st.rv)
        };
        let mut dropped = self.drop_tx.subscribe();
        let every = self.bookmark_every;
        let timeout = Duration::from_secs(
            query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800),
        );
        tokio::spawn(async move {
            let mut last_rv = current;
            for (_, kind, obj) in &replay {
                if tx.send(line(kind, obj)).await.is_err() {
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    ev = live.recv() => match ev {
                        Ok((rv, kind, obj)) => {
                            last_rv = rv;
                            if on_node(&obj, node.as_deref()) && tx.send(line(kind, &obj)).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    _ = tick.tick(), if bookmarks => {
                        let bm = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": last_rv.to_string()}});
                        if tx.send(line("BOOKMARK", &bm)).await.is_err() {
                            return;
                        }
                    }
                    _ = dropped.recv() => {
                        // An error frame makes hyper abort the connection mid-stream.
                        let _ = tx.send(Err(std::io::Error::other("connection dropped"))).await;
                        return;
                    }
                    () = &mut deadline => return,
                }
            }
        });
        stream_response(rx)
    }
}

fn stream_response(
    rx: mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> http::Response<Body> {
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}
