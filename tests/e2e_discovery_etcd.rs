//! Control-plane discovery against a real etcd: a kubeadm-shaped static pod
//! manifest names an etcd that demands client certificates; crowsnest finds
//! it with zero scrape config, scrapes it with mTLS and remote-writes the
//! series to a real Prometheus. Then the failure modes: a client certificate
//! from the wrong CA, etcd stopped, etcd back.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use crowsnest_tests::instance::Instance;
use crowsnest_tests::ports::free_port;
use crowsnest_tests::process::{ChildProcess, STOP_GRACE};
use crowsnest_tests::{Agent, PROMETHEUS_BIN, Prometheus, require_binary, wait};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;

/// etcd, from the Debian package `etcd-server` (see tests/dependencies.txt).
const ETCD_BIN: &str = "/usr/bin/etcd";
/// kops' etcd-manager client port; a free port when something else holds it.
const ETCD_PORT: u16 = 4001;
const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "cp-test-1";

struct Ca {
    pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// (certificate PEM, key PEM) for `names` with `usage`.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Result<(String, String)> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes `contents` atomically, the way kubelet and cert-manager rotate files.
fn write(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))
}

/// A single-member etcd with TLS on its client port and `--client-cert-auth`.
struct Etcd {
    args: Vec<String>,
    log: PathBuf,
    process: Option<ChildProcess>,
    client: SocketAddr,
}

impl Etcd {
    fn new(dir: &Path, pki: &Path, port: u16) -> Result<Self> {
        let peer = free_port()?;
        let client = SocketAddr::from(([127, 0, 0, 1], port));
        let args = [
            "--name=cp-test-1".to_owned(),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--listen-client-urls=https://{client}"),
            format!("--advertise-client-urls=https://{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=cp-test-1=http://127.0.0.1:{peer}"),
            format!("--cert-file={}", pki.join("server.crt").display()),
            format!("--key-file={}", pki.join("server.key").display()),
            format!("--trusted-ca-file={}", pki.join("ca.crt").display()),
            "--client-cert-auth=true".to_owned(),
        ]
        .to_vec();
        Ok(Self {
            args,
            log: dir.join("etcd.log"),
            process: None,
            client,
        })
    }

    async fn start(&mut self) -> Result<()> {
        let mut command = Command::new(ETCD_BIN);
        command.args(&self.args);
        self.process = Some(ChildProcess::spawn("etcd", &mut command, &self.log)?);
        let client = self.client;
        wait::poll(
            "etcd client port",
            WAIT,
            Duration::from_millis(100),
            || async move { Ok(TcpStream::connect(client).is_ok().then_some(())) },
        )
        .await
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.stop(STOP_GRACE)?;
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        crowsnest_tests::process::tail(&self.log, 30)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A kubeadm-shaped static pod manifest for that etcd.
fn manifest(etcd: &Etcd, pki: &Path) -> String {
    let flags: String = std::iter::once("etcd".to_owned())
        .chain(etcd.args.iter().cloned())
        .map(|a| format!("    - {a}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {{component: etcd, tier: control-plane}}\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{flags}    image: registry.k8s.io/etcd:3.5.15-0\n    name: etcd\n    volumeMounts:\n    - {{mountPath: {pki}, name: etcd-certs}}\n  hostNetwork: true\n  volumes:\n  - hostPath: {{path: {pki}, type: DirectoryOrCreate}}\n    name: etcd-certs\n",
        pki = pki.display()
    )
}

/// A kops-shaped etcd-manager manifest for the same etcd: the client URL in a
/// `sh -c` script, the certificates in the host folder mounted at
/// /etc/kubernetes/pki/etcd-manager.
fn kops_manifest(port: u16, pki: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {{k8s-app: etcd-manager-main}}\n  name: etcd-manager-main\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - /bin/sh\n    - -c\n    - mkfifo /tmp/pipe; (tee -a /var/log/etcd.log < /tmp/pipe & ) ; exec /etcd-manager\n      --backup-store=s3://state/test.k8s.local/backups/etcd/main --client-urls=https://__name__:{port}\n      --cluster-name=etcd --containerized=true --grpc-port=3996 --peer-urls=https://__name__:2380\n      --v=6 > /tmp/pipe 2>&1\n    image: registry.k8s.io/etcdadm/etcd-manager-slim:v3.0.20240802\n    name: etcd-manager\n    volumeMounts:\n    - {{mountPath: /rootfs, name: rootfs}}\n    - {{mountPath: /etc/kubernetes/pki/etcd-manager, name: pki}}\n  hostNetwork: true\n  volumes:\n  - hostPath: {{path: /, type: Directory}}\n    name: rootfs\n  - hostPath: {{path: {pki}, type: DirectoryOrCreate}}\n    name: pki\n",
        pki = pki.display()
    )
}

fn agent_config(manifests: &Path, remote_write: &str) -> String {
    // Probing is off (ports: []) so the test sees only what the manifest names.
    let components: String = [
        "etcd",
        "apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "kubelet",
        "coredns",
    ]
    .iter()
    .map(|c| format!("    {c}: {{ports: []}}\n"))
    .collect();
    format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nlogging: {{level: debug, format: text}}\ndiscovery:\n  manifests_path: {}\n  node_name: {NODE}\n  refresh_interval: 2s\n  components:\n{components}remote_write:\n  - url: {remote_write}\n    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n",
        manifests.display()
    )
}

/// The agent's status entry of the etcd target.
async fn etcd_status(agent: &Agent) -> Result<(Value, Value)> {
    let status: Value = serde_json::from_slice(&agent.get("/api/v1/status").await?.body)?;
    let target = status["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["job"] == "etcd"))
        .cloned()
        .context("no etcd target in /api/v1/status")?;
    let discovered = status["discovered"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["component"] == "etcd"))
        .cloned()
        .context("no etcd in discovered")?;
    Ok((target, discovered))
}

async fn wait_reason(agent: &Agent, reason: &'static str) -> Result<Value> {
    wait::poll(
        &format!("etcd target down with {reason}"),
        WAIT,
        Duration::from_millis(200),
        || async {
            let (target, _) = etcd_status(agent).await?;
            Ok(
                (target["health"] == "down" && target["last_error_reason"] == reason)
                    .then_some(target),
            )
        },
    )
    .await
}

#[tokio::test]
async fn discovers_and_scrapes_a_real_etcd_with_mtls() -> Result<()> {
    for bin in [ETCD_BIN, PROMETHEUS_BIN] {
        if require_binary(bin).is_skip() {
            return Ok(());
        }
    }
    let dir = Instance::temp_dir("etcd")?;
    let pki = dir.path().join("pki/etcd");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&pki)?;
    std::fs::create_dir_all(&manifests)?;
    let ca = Ca::new("etcd-ca")?;
    let (server_crt, server_key) = ca.leaf(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    // kubeadm's layout: the health-check client cert beside the CA.
    let (client_crt, client_key) = ca.leaf(
        &["kube-etcd-healthcheck-client"],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let rogue = Ca::new("not-the-etcd-ca")?;
    let (rogue_crt, rogue_key) = rogue.leaf(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth)?;
    write(&pki.join("ca.crt"), &ca.pem)?;
    write(&pki.join("server.crt"), &server_crt)?;
    write(&pki.join("server.key"), &server_key)?;
    write(&pki.join("healthcheck-client.crt"), &client_crt)?;
    write(&pki.join("healthcheck-client.key"), &client_key)?;

    let port = if TcpStream::connect(("127.0.0.1", ETCD_PORT)).is_ok() {
        free_port()?
    } else {
        ETCD_PORT
    };
    let mut etcd = Etcd::new(dir.path(), &pki, port)?;
    etcd.start().await?;
    write(&manifests.join("etcd.yaml"), &manifest(&etcd, &pki))?;

    let prometheus = Prometheus::start().await?;
    let agent = Agent::start(&agent_config(&manifests, &prometheus.remote_write_url())).await?;
    let prom = prometheus.api();

    // Found through the manifest, scraped with the kubeadm client cert.
    let series = format!(
        "etcd_server_has_leader{{job=\"etcd\",node=\"{NODE}\",instance=\"127.0.0.1:{port}\"}}"
    );
    prom.wait_for(&series, |r| r.len() == 1 && r[0].1 == 1.0, WAIT)
        .await
        .with_context(|| etcd.log_tail())?;
    prom.wait_for(
        "count(etcd_disk_wal_fsync_duration_seconds_bucket{job=\"etcd\"})",
        |r| r.first().is_some_and(|(_, v)| *v > 5.0),
        WAIT,
    )
    .await?;
    prom.wait_for(
        "etcd_disk_backend_commit_duration_seconds_count{job=\"etcd\"}",
        |r| r.len() == 1,
        WAIT,
    )
    .await?;
    // The curated set: etcd's debugging families stay out.
    let debugging = prom
        .query("count({job=\"etcd\",__name__=~\"etcd_debugging_.*|go_gc_.*\"})")
        .await?;
    ensure!(debugging.is_empty(), "curated set leaked: {debugging:?}");
    let (target, discovered) = etcd_status(&agent).await?;
    ensure!(target["health"] == "up", "{target}");
    ensure!(
        discovered["source"] == "manifest"
            && discovered["auth"] == "client_cert"
            && discovered["scheme"] == "https",
        "{discovered}"
    );
    let metrics = agent.self_metrics().await?;
    ensure!(
        metrics.contains("crowsnest_discovered_targets{component=\"etcd\",source=\"manifest\"} 1"),
        "{metrics}"
    );

    // kops' layout: etcd-manager's manifest, and the clients CA's own
    // certificate and key as the client certificate (what kops documents).
    let kops_pki = dir.path().join("etcd-manager-main");
    let kops_manifests = dir.path().join("kops-manifests");
    std::fs::create_dir_all(&kops_pki)?;
    std::fs::create_dir_all(&kops_manifests)?;
    write(&kops_pki.join("etcd-clients-ca.crt"), &ca.pem)?;
    write(&kops_pki.join("etcd-clients-ca.key"), &ca.key_pem)?;
    write(
        &kops_manifests.join("etcd-manager-main.manifest"),
        &kops_manifest(port, &kops_pki),
    )?;
    let kops = agent_config(&kops_manifests, &prometheus.remote_write_url())
        .replace(&format!("node_name: {NODE}"), "node_name: kops-node");
    let mut kops_agent = Agent::start(&kops).await?;
    prom.wait_for(
        "etcd_server_has_leader{job=\"etcd\",node=\"kops-node\"}",
        |r| r.len() == 1 && r[0].1 == 1.0,
        WAIT,
    )
    .await?;
    kops_agent.stop()?;

    // A client certificate from another CA (configured as the etcd override):
    // etcd refuses the handshake. A second agent, so the first keeps its
    // connection; its `node` label keeps the two apart in Prometheus.
    write(&dir.path().join("rogue.crt"), &rogue_crt)?;
    write(&dir.path().join("rogue.key"), &rogue_key)?;
    let wrong = agent_config(&manifests, &prometheus.remote_write_url())
        .replace(&format!("node_name: {NODE}"), "node_name: wrong-cert")
        .replace(
            "    etcd: {ports: []}",
            &format!(
                "    etcd: {{ports: [], cert_file: {0}/rogue.crt, key_file: {0}/rogue.key}}",
                dir.path().display()
            ),
        );
    let mut wrong_agent = Agent::start(&wrong).await?;
    let target = wait_reason(&wrong_agent, "bad_certificate").await?;
    ensure!(
        target["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("client certificate")),
        "{target}"
    );
    prom.wait_for(
        "up{job=\"etcd\",node=\"wrong-cert\"}",
        |r| r.len() == 1 && r[0].1 == 0.0,
        WAIT,
    )
    .await?;
    wrong_agent.stop()?;

    // etcd stopped: up=0, and its series go stale (absent from instant queries).
    etcd.stop()?;
    wait_reason(&agent, "connection_refused").await?;
    let up = format!("up{{job=\"etcd\",node=\"{NODE}\"}}");
    prom.wait_for(&up, |r| r.len() == 1 && r[0].1 == 0.0, WAIT)
        .await?;
    prom.wait_for(&series, Vec::is_empty, WAIT).await?;

    // etcd back: scraping recovers without a restart of the agent.
    etcd.start().await?;
    prom.wait_for(&series, |r| r.len() == 1 && r[0].1 == 1.0, WAIT)
        .await
        .with_context(|| etcd.log_tail())?;
    Ok(())
}
