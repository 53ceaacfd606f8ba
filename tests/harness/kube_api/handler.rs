//! Request handling of the test API server: auth, fault injection, routing,
//! list, get and the watch stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::{Body, Fault, SeenRequest, State, objects};

#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) token: String,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) events: broadcast::Sender<(u64, &'static str, Value)>,
    pub(super) drop_tx: broadcast::Sender<()>,
    pub(super) bookmark_every: Duration,
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
    pub(super) async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Body> {
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
