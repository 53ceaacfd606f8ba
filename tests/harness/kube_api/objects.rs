//! Kubernetes JSON in the exact shapes the API server sends: `v1.Pod`,
//! `apps/v1` ReplicaSet, `batch/v1` Job, `meta/v1` Status. Builders chain.

use serde_json::{Value, json};

/// A pod fixture.
#[derive(Clone, Debug)]
pub struct PodFixture {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `status.podIP` (empty: none yet).
    pub ip: String,
    /// Controller owner (kind, name).
    pub owner: Option<(String, String)>,
    /// `metadata.labels`.
    pub labels: Vec<(String, String)>,
    /// `metadata.annotations`.
    pub annotations: Vec<(String, String)>,
    /// (name, runtime-prefixed id or "" when not started yet)
    pub containers: Vec<(String, String)>,
    /// Init containers, same shape.
    pub init_containers: Vec<(String, String)>,
    /// Declared container ports (container, port).
    pub ports: Vec<(String, u16)>,
}

impl PodFixture {
    /// A pod on `node`; add containers, owner and labels with the builders.
    pub fn new(namespace: &str, name: &str, uid: &str, node: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            node: node.to_owned(),
            ip: String::new(),
            owner: None,
            labels: Vec::new(),
            annotations: Vec::new(),
            containers: Vec::new(),
            init_containers: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Declares `port` on `container`.
    pub fn port(mut self, container: &str, port: u16) -> Self {
        self.ports.push((container.to_owned(), port));
        self
    }

    /// Sets the controller owner.
    pub fn owner(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some((kind.to_owned(), name.to_owned()));
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Adds a container; `id` is runtime-prefixed (`containerd://…`) or empty.
    pub fn container(mut self, name: &str, id: &str) -> Self {
        self.containers.push((name.to_owned(), id.to_owned()));
        self
    }

    /// Adds an init container.
    pub fn init_container(mut self, name: &str, id: &str) -> Self {
        self.init_containers.push((name.to_owned(), id.to_owned()));
        self
    }

    /// Sets the pod IP.
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.to_owned();
        self
    }

    /// The `v1.Pod` JSON (without resourceVersion; the server sets it).
    pub fn json(&self) -> Value {
        let map = |pairs: &[(String, String)]| -> Value {
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let status = |list: &[(String, String)]| -> Value {
            list.iter()
                .map(|(name, id)| {
                    let mut s = json!({
                        "name": name, "image": format!("registry.example/{name}:1"),
                        "imageID": "", "ready": !id.is_empty(), "restartCount": 0, "started": !id.is_empty(),
                        "state": if id.is_empty() { json!({"waiting": {"reason": "ContainerCreating"}}) } else { json!({"running": {"startedAt": "2026-11-22T10:00:00Z"}}) }
                    });
                    if !id.is_empty() {
                        s["containerID"] = Value::String(id.clone());
                    }
                    s
                })
                .collect()
        };
        let spec_containers = |list: &[(String, String)]| -> Value {
            list.iter()
                .map(|(name, _)| {
                    let ports: Vec<Value> = self.ports.iter().filter(|(c, _)| c == name)
                        .map(|(_, p)| json!({"name": format!("p{p}"), "containerPort": p, "protocol": "TCP"}))
                        .collect();
                    json!({"name": name, "image": format!("registry.example/{name}:1"), "ports": ports,
                        "resources": {}, "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"})
                })
                .collect()
        };
        let mut metadata = json!({
            "name": self.name, "namespace": self.namespace, "uid": self.uid,
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": map(&self.labels), "annotations": map(&self.annotations),
            // Bulky field real servers send; the agent must drop it.
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-22T10:00:01Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {".": {}}, "f:containerStatuses": {}, "f:phase": {}}}}]
        });
        if let Some((kind, name)) = &self.owner {
            let api = match kind.as_str() {
                "ReplicaSet" | "DaemonSet" | "StatefulSet" => "apps/v1",
                "Job" => "batch/v1",
                _ => "v1",
            };
            metadata["ownerReferences"] = json!([{"apiVersion": api, "kind": kind, "name": name,
                "uid": format!("owner-{name}"), "controller": true, "blockOwnerDeletion": true}]);
        }
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": metadata,
            "spec": {
                "nodeName": self.node, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "schedulerName": "default-scheduler",
                "containers": spec_containers(&self.containers),
                "initContainers": spec_containers(&self.init_containers),
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
            },
            "status": {
                "phase": "Running", "podIP": self.ip, "hostIP": "192.168.1.10", "qosClass": "Burstable",
                "startTime": "2026-11-22T10:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T10:00:02Z"}],
                "containerStatuses": status(&self.containers),
                "initContainerStatuses": status(&self.init_containers)
            }
        })
    }
}

/// An `apps/v1` ReplicaSet owned by a Deployment.
pub fn replica_set(ns: &str, name: &str, deployment: &str) -> Value {
    json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "uid": format!("rs-{name}"), "resourceVersion": "7",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                "uid": format!("deploy-{deployment}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": deployment}},
            "template": {"metadata": {"labels": {"app": deployment}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "fullyLabeledReplicas": 2, "observedGeneration": 1}
    })
}

/// A `batch/v1` Job owned by a CronJob.
pub fn job(ns: &str, name: &str, cronjob: &str) -> Value {
    json!({
        "kind": "Job", "apiVersion": "batch/v1",
        "metadata": {"name": name, "namespace": ns, "uid": format!("job-{name}"), "resourceVersion": "9",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                "uid": format!("cj-{cronjob}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "job:1"}]}}},
        "status": {"active": 1, "startTime": "2026-11-22T10:00:00Z"}
    })
}

/// A `meta/v1` Status failure.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}
