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

mod handler;
/// JSON builders of API objects.
pub mod objects;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

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
        let ctx = handler::Ctx {
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
