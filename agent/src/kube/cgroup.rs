//! cgroup path -> (pod uid, container id): the one resolver of the path
//! shapes kubelets and container runtimes create.
//!
//! The eBPF collectors label series with the cgroup's path relative to the
//! cgroup2 mount (`/kubepods.slice/…`); on v1/hybrid hosts the path relative
//! to a controller's mount has the same shape. The path alone names the pod
//! (kubelet puts the pod uid in it) and the container (the runtime puts its id
//! in it), so a new cgroup resolves from its name without touching the
//! filesystem: this is what makes new cgroups known "promptly" — the first
//! sample that carries the path is enough.
//!
//! Each path segment is matched against [`SHAPES`]; the deepest pod segment
//! and the deepest container segment win, so sub-cgroups a container creates
//! itself (`…/docker-<id>.scope/init.scope`) resolve to their container.

/// Container runtime that created a container cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd's CRI plugin.
    Containerd,
    /// CRI-O.
    CriO,
    /// Docker (dockershim / cri-dockerd, or plain Docker).
    Docker,
    /// Podman (libpod).
    Podman,
    /// A bare id directory (cgroupfs driver): the runtime is not in the path.
    Unknown,
}

impl Runtime {
    /// Short name for labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Unknown => "unknown",
        }
    }
}

/// What one matched segment says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// The pod's cgroup; systemd names carry the uid with `_` for `-`.
    Pod,
    /// A container's cgroup.
    Container(Runtime),
    /// A runtime helper that is neither the pod nor a container (CRI-O's
    /// conmon); it stays attributed to the pod only.
    Helper,
}

/// How a segment is matched: `prefix` + id + `suffix`, where the id is what
/// is left in between (for pods, after the last `marker`).
struct Shape {
    prefix: &'static str,
    marker: &'static str,
    suffix: &'static str,
    part: Part,
}

/// Known segment shapes, most specific first (the first match wins).
const SHAPES: &[Shape] = &[
    // CRI-O's container monitor next to each container: `crio-conmon-<id>.scope`
    // (systemd driver). Must precede the `crio-` rule.
    Shape {
        prefix: "crio-conmon-",
        marker: "",
        suffix: ".scope",
        part: Part::Helper,
    },
    // containerd CRI plugin, systemd driver: `cri-containerd-<id>.scope`.
    Shape {
        prefix: "cri-containerd-",
        marker: "",
        suffix: ".scope",
        part: Part::Container(Runtime::Containerd),
    },
    // CRI-O, systemd driver: `crio-<id>.scope`.
    Shape {
        prefix: "crio-",
        marker: "",
        suffix: ".scope",
        part: Part::Container(Runtime::CriO),
    },
    // CRI-O, cgroupfs driver: `crio-<id>` directly under the pod directory.
    Shape {
        prefix: "crio-",
        marker: "",
        suffix: "",
        part: Part::Container(Runtime::CriO),
    },
    // Docker (cri-dockerd, or plain Docker under system.slice), systemd driver: `docker-<id>.scope`.
    Shape {
        prefix: "docker-",
        marker: "",
        suffix: ".scope",
        part: Part::Container(Runtime::Docker),
    },
    // Podman, systemd driver: `libpod-<id>.scope` (machine.slice or a user slice).
    Shape {
        prefix: "libpod-",
        marker: "",
        suffix: ".scope",
        part: Part::Container(Runtime::Podman),
    },
    // kubelet, systemd driver: `kubepods-pod<uid>.slice` (Guaranteed),
    // `kubepods-burstable-pod<uid>.slice`, `kubepods-besteffort-pod<uid>.slice`;
    // kind and other nested kubelets prefix `kubelet-`. The uid's `-` are `_`.
    Shape {
        prefix: "kube",
        marker: "-pod",
        suffix: ".slice",
        part: Part::Pod,
    },
    // kubelet, cgroupfs driver: `pod<uid>` under `/kubepods[/<qos>]`.
    Shape {
        prefix: "pod",
        marker: "",
        suffix: "",
        part: Part::Pod,
    },
    // containerd or Docker, cgroupfs driver: the bare 64-hex id under the pod
    // directory (kubelet) or under `/docker` (plain Docker).
    Shape {
        prefix: "",
        marker: "",
        suffix: "",
        part: Part::Container(Runtime::Unknown),
    },
];

/// What a cgroup path says about its workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// Pod uid (with `-`), when the path is under a kubelet pod cgroup.
    pub pod_uid: Option<String>,
    /// Bare container id, when the path is (under) a container cgroup.
    pub container_id: Option<String>,
    /// Who created the container cgroup.
    pub runtime: Option<Runtime>,
}

impl CgroupIdentity {
    /// True when the path names neither a pod nor a container (host cgroups).
    pub fn is_empty(&self) -> bool {
        self.pod_uid.is_none() && self.container_id.is_none()
    }
}

/// Resolves a cgroup path (relative to its hierarchy's mount) to the pod
/// and container it belongs to.
pub fn resolve(path: &str) -> CgroupIdentity {
    let mut out = CgroupIdentity::default();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        match classify(segment) {
            Some((Part::Pod, uid)) => {
                out.pod_uid = Some(uid.replace('_', "-"));
                // A new pod level resets what a previous level said.
                out.container_id = None;
                out.runtime = None;
            }
            Some((Part::Container(rt), id)) => {
                out.container_id = Some(id.to_owned());
                out.runtime = Some(rt);
            }
            Some((Part::Helper, _)) | None => {}
        }
    }
    out
}

fn classify(segment: &str) -> Option<(Part, &str)> {
    SHAPES.iter().find_map(|shape| {
        let rest = segment
            .strip_prefix(shape.prefix)?
            .strip_suffix(shape.suffix)?;
        let id = if shape.marker.is_empty() {
            rest
        } else {
            rest.rsplit_once(shape.marker)?.1
        };
        let valid = match shape.part {
            Part::Pod => is_pod_uid(id),
            Part::Container(_) | Part::Helper => is_container_id(id),
        };
        valid.then_some((shape.part, id))
    })
}

/// Runtime ids are lower-case hex: 64 characters for containerd, CRI-O and
/// Docker; at least 12 accepted for short forms.
fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// API pod uids are UUIDs (36 characters); static pods' uids are 32-hex
/// config hashes. systemd names spell `-` as `_`.
fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const UID_: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
    const STATIC_UID: &str = "6b3a0b2d3e4f5a6b7c8d9e0f1a2b3c4d";
    const ID: &str = "4a1c0de2b3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0";

    /// (path, pod uid, container id, runtime); `{uid}`/`{uid_}`/`{id}` are substituted.
    const CASES: &[(&str, Option<&str>, bool, Option<Runtime>)] = &[
        // containerd + systemd driver, cgroup v2, each QoS class.
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::Containerd),
        ),
        (
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::Containerd),
        ),
        (
            "/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::Containerd),
        ),
        // The pod cgroup itself (sandbox accounting, pod-level limits).
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice",
            Some(UID),
            false,
            None,
        ),
        // CRI-O + systemd: container and its conmon.
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::CriO),
        ),
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-conmon-{id}.scope",
            Some(UID),
            false,
            None,
        ),
        // CRI-O may nest a `container` sub-cgroup under the scope.
        (
            "/kubepods.slice/kubepods-pod{uid_}.slice/crio-{id}.scope/container",
            Some(UID),
            true,
            Some(Runtime::CriO),
        ),
        // cri-dockerd + systemd.
        (
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/docker-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::Docker),
        ),
        // kind / nested kubelet with --cgroup-root=/kubelet (systemd).
        (
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{id}.scope",
            Some(UID),
            true,
            Some(Runtime::Containerd),
        ),
        // cgroupfs driver (v1 controller hierarchies and v2 alike): containerd or Docker.
        (
            "/kubepods/burstable/pod{uid}/{id}",
            Some(UID),
            true,
            Some(Runtime::Unknown),
        ),
        (
            "/kubepods/besteffort/pod{uid}/{id}",
            Some(UID),
            true,
            Some(Runtime::Unknown),
        ),
        (
            "/kubepods/pod{uid}/{id}",
            Some(UID),
            true,
            Some(Runtime::Unknown),
        ),
        ("/kubepods/pod{uid}", Some(UID), false, None),
        // CRI-O + cgroupfs.
        (
            "/kubepods/burstable/pod{uid}/crio-{id}",
            Some(UID),
            true,
            Some(Runtime::CriO),
        ),
        // Static pods (uid = 32-hex config hash).
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{static}.slice/cri-containerd-{id}.scope",
            Some(STATIC_UID),
            true,
            Some(Runtime::Containerd),
        ),
        // Plain Docker, no Kubernetes: systemd and cgroupfs drivers.
        (
            "/system.slice/docker-{id}.scope",
            None,
            true,
            Some(Runtime::Docker),
        ),
        ("/docker/{id}", None, true, Some(Runtime::Unknown)),
        // Podman (root and rootless).
        (
            "/machine.slice/libpod-{id}.scope",
            None,
            true,
            Some(Runtime::Podman),
        ),
        (
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{id}.scope/container",
            None,
            true,
            Some(Runtime::Podman),
        ),
        // Host cgroups: nothing to say.
        ("/", None, false, None),
        ("/system.slice/containerd.service", None, false, None),
        ("/system.slice/docker.service", None, false, None),
        ("/kubepods.slice", None, false, None),
        (
            "/kubepods.slice/kubepods-burstable.slice",
            None,
            false,
            None,
        ),
        (
            "/user.slice/user-1000.slice/session-3.scope",
            None,
            false,
            None,
        ),
        // Look-alikes that must not match: a non-hex "pod" directory and a short id.
        ("/kubepods/burstable/podcast/deadbeef", None, false, None),
        ("/system.slice/docker-cleanup.scope", None, false, None),
    ];

    #[test]
    fn path_shapes() {
        for (path, uid, has_id, runtime) in CASES {
            let path = path
                .replace("{uid_}", UID_)
                .replace("{uid}", UID)
                .replace("{static}", STATIC_UID)
                .replace("{id}", ID);
            let got = resolve(&path);
            let want = CgroupIdentity {
                pod_uid: uid.map(str::to_owned),
                container_id: has_id.then(|| ID.to_owned()),
                runtime: *runtime,
            };
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn every_shape_is_exercised() {
        // A shape without a case is an untested claim.
        let shapes_hit: std::collections::HashSet<usize> = CASES
            .iter()
            .flat_map(|(p, ..)| {
                let p = p
                    .replace("{uid_}", UID_)
                    .replace("{uid}", UID)
                    .replace("{static}", STATIC_UID)
                    .replace("{id}", ID);
                p.split('/')
                    .filter_map(|seg| {
                        SHAPES.iter().position(|s| {
                            seg.strip_prefix(s.prefix)
                                .and_then(|r| r.strip_suffix(s.suffix))
                                .is_some()
                                && classify(seg).is_some_and(|(part, _)| part == s.part)
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(shapes_hit.len(), SHAPES.len());
    }
}
