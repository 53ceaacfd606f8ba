//! Building the API client: in-cluster (service-account token + CA from
//! `/var/run/secrets/kubernetes.io/serviceaccount`, server from
//! `KUBERNETES_SERVICE_HOST/PORT`) or a kubeconfig for development.
//! TLS is rustls with ring (kube's `rustls-tls` feature): no OpenSSL.

use std::path::Path;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::KubeError;

/// A client from an explicit kubeconfig file, else inferred: in-cluster
/// when running in a pod, else `$KUBECONFIG` / `~/.kube/config`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| KubeError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeError::NotFound(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))
}
