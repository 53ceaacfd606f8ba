//! Control-plane discovery through the real agent binary, against stand-ins
//! for kube-proxy (plain HTTP, as on :10249) and kube-controller-manager
//! (HTTPS with a self-signed serving cert, as kubeadm's :10257, checking the
//! bearer token the way its delegated authn/authz does: unknown token 401,
//! valid token without RBAC 403). They serve our own recorded exposition
//! text. Discovery finds both by probing the ports the config names, and the
//! series arrive in a real Prometheus under the mixins' job names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crowsnest_tests::instance::Instance;
use crowsnest_tests::{Agent, Exporter, PROMETHEUS_BIN, Prometheus, require_binary, wait};

const KUBE_PROXY: &str = include_str!("../agent/src/discovery/testdata/kube-proxy.prom");
const KCM: &str = include_str!("../agent/src/discovery/testdata/kube-controller-manager.prom");
const GOOD: &str = "token-with-metrics-rbac";
const UNPRIVILEGED: &str = "token-without-rbac";
const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "cp-test-2";

/// kube-controller-manager's secure port, as far as a scraper can tell.
struct FakeControllerManager {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeControllerManager {
    async fn start() -> Result<Self> {
        // Like kubeadm's default: a self-signed cert made at start, no CA to verify it with.
        let key = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for FakeControllerManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (status, body) = if auth == format!("Bearer {GOOD}") {
        (StatusCode::OK, KCM)
    } else if auth == format!("Bearer {UNPRIVILEGED}") {
        (
            StatusCode::FORBIDDEN,
            "forbidden: User \"system:serviceaccount:monitoring:crowsnest\" cannot get path \"/metrics\"\n",
        )
    } else {
        (StatusCode::UNAUTHORIZED, "Unauthorized\n")
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

fn agent_config(dir: &Path, kube_proxy: u16, kcm: u16, remote_write: &str) -> String {
    format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}
logging: {{level: debug, format: text}}
discovery:
  manifests_path: {dir}/no-manifests-on-this-node
  node_name: {NODE}
  token_file: {dir}/token
  refresh_interval: 5s
  components:
    etcd: {{ports: []}}
    kube-scheduler: {{ports: []}}
    kubelet: {{ports: []}}
    coredns: {{ports: []}}
    kube-proxy: {{ports: [{kube_proxy}]}}
    kube-controller-manager: {{ports: [{kcm}]}}
remote_write:
  - url: {remote_write}
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}
",
        dir = dir.display()
    )
}

fn write(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).context("rotate file")
}

async fn status(agent: &Agent) -> Result<Value> {
    Ok(serde_json::from_slice(
        &agent.get("/api/v1/status").await?.body,
    )?)
}

/// Waits until the kube-controller-manager target is down for `reason`.
async fn wait_reason(agent: &Agent, reason: &'static str) -> Result<Value> {
    wait::poll(reason, WAIT, Duration::from_millis(200), || async {
        let s = status(agent).await?;
        Ok(s["targets"].as_array().and_then(|t| {
            t.iter()
                .find(|t| {
                    t["job"] == "kube-controller-manager"
                        && t["health"] == "down"
                        && t["last_error_reason"] == reason
                })
                .cloned()
        }))
    })
    .await
}

#[tokio::test]
async fn discovers_kube_proxy_and_a_bearer_protected_controller_manager() -> Result<()> {
    if require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    let dir = Instance::temp_dir("components")?;
    write(&dir.path().join("token"), GOOD)?;
    let kube_proxy = Exporter::start().await?;
    kube_proxy.serve_text(KUBE_PROXY);
    let kcm = FakeControllerManager::start().await?;
    let prometheus = Prometheus::start().await?;
    let agent = Agent::start(&agent_config(
        dir.path(),
        kube_proxy.addr().port(),
        kcm.addr.port(),
        &prometheus.remote_write_url(),
    ))
    .await?;
    let prom = prometheus.api();

    prom.wait_for(
        &format!("kubeproxy_sync_proxy_rules_duration_seconds_count{{job=\"kube-proxy\",node=\"{NODE}\"}}"),
        |r| r.len() == 1 && r[0].1 == 20.0,
        WAIT,
    )
    .await?;
    prom.wait_for(
        &format!("workqueue_adds_total{{job=\"kube-controller-manager\",node=\"{NODE}\",name=\"deployment\"}}"),
        |r| r.len() == 1 && r[0].1 == 31.0,
        WAIT,
    )
    .await?;
    // The seeds' kube-proxy request-rate expression works on what arrived.
    prom.wait_for(
        "sum(rate(rest_client_requests_total{job=\"kube-proxy\"}[5m]))",
        |r| r.len() == 1,
        WAIT,
    )
    .await?;
    // Curated: Go runtime detail and audit counters stay out.
    for dropped in [
        "go_gc_duration_seconds_count{job=\"kube-proxy\"}",
        "apiserver_audit_event_total{job=\"kube-controller-manager\"}",
    ] {
        ensure!(prom.query(dropped).await?.is_empty(), "{dropped} kept");
    }
    let s = status(&agent).await?;
    let discovered = s["discovered"].as_array().context("discovered list")?;
    let summary: Vec<(String, String, String)> = discovered
        .iter()
        .map(|d| {
            (
                d["component"].as_str().unwrap_or("").to_owned(),
                d["source"].as_str().unwrap_or("").to_owned(),
                d["auth"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ensure!(
        summary
            == [
                (
                    "kube-controller-manager".into(),
                    "probe".into(),
                    "bearer".into()
                ),
                ("kube-proxy".into(), "probe".into(), "none".into())
            ],
        "{summary:?}"
    );
    ensure!(
        !s.to_string().contains(GOOD),
        "the token leaked into the status"
    );

    // `crowsnest discover` shows the same, how it would scrape, and a scrape of each.
    let output = tokio::process::Command::new(crowsnest_tests::agent::agent_binary()?)
        .args(["discover", "--scrape", "--config"])
        .arg(agent.config_path())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for want in [
        format!(
            "kube-controller-manager  probe     https://{}/metrics",
            kcm.addr
        ),
        "server certificate: not verified (insecure_skip_verify)".to_owned(),
        format!(
            "authorization: Bearer token from {}/token",
            dir.path().display()
        ),
        format!(
            "kube-proxy               probe     http://{}/metrics",
            kube_proxy.addr()
        ),
        format!("https://{}/metrics: ok,", kcm.addr),
        "jobs that would run".to_owned(),
    ] {
        ensure!(stdout.contains(&want), "`{want}` missing from:\n{stdout}");
    }
    ensure!(!stdout.contains(GOOD), "token printed");

    // A token without RBAC: 403 with the fix; an unknown token: 401.
    write(&dir.path().join("token"), UNPRIVILEGED)?;
    let target = wait_reason(&agent, "forbidden").await?;
    let error = target["last_error"].as_str().unwrap_or("");
    ensure!(
        error.contains("403") && error.contains("nonResourceURLs"),
        "{target}"
    );
    write(&dir.path().join("token"), "expired-or-foreign")?;
    wait_reason(&agent, "unauthorized").await?;
    prom.wait_for(
        "up{job=\"kube-controller-manager\"}",
        |r| r.len() == 1 && r[0].1 == 0.0,
        WAIT,
    )
    .await?;
    let metrics = agent.self_metrics().await?;
    for reason in ["forbidden", "unauthorized"] {
        let line = format!(
            "crowsnest_scrape_errors_total{{job=\"kube-controller-manager\",reason=\"{reason}\"}}"
        );
        ensure!(metrics.contains(&line), "{line} missing");
    }
    ensure!(!metrics.contains(UNPRIVILEGED), "token in self-metrics");

    // The token is fixed: scraping recovers.
    write(&dir.path().join("token"), GOOD)?;
    prom.wait_for(
        "up{job=\"kube-controller-manager\"}",
        |r| r.len() == 1 && r[0].1 == 1.0,
        WAIT,
    )
    .await?;
    Ok(())
}
