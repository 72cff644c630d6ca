//! Renders freshly generated single-node and cluster directories, parses every rendered YAML
//! file and checks each hardening item of the issue (§3) on every pod template, the network
//! policies' effective flows, and that no secret value of the directory appears in any object
//! but a Secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sealcache_config_gen::cluster_dir::{self, ClusterOptions, write_cluster_deployment};
use sealcache_config_gen::{
    DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, SecureConfigGenerator,
    layout,
};
use sealcache_ops::k8s::{self, RenderOptions, ServerCertificate, Topology};
use serde_json::Value;

fn generate(cluster: bool) -> (tempfile::TempDir, PathBuf) {
    common::deployment(cluster)
}

/// The objects of a Kustomize directory, as `kubectl kustomize` assembles them: the files and
/// directories its `resources` list, recursively (patches only touch replicas and annotations).
fn build(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(k8s::KUSTOMIZATION)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kustomization = &docs[0];
    assert_eq!(kustomization["kind"], "Kustomization");
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_array().unwrap() {
        let path = dir.join(resource.as_str().unwrap());
        if path.is_dir() {
            objects.extend(build(&path));
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            objects.extend(docs);
        }
    }
    objects
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Every pod template: (workload name, template).
fn pod_templates(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter(|o| {
            ["Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"]
                .contains(&o["kind"].as_str().unwrap_or(""))
        })
        .map(|o| {
            assert_ne!(o["kind"], "DaemonSet");
            assert_ne!(o["kind"], "CronJob");
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                &o["spec"]["template"],
            )
        })
        .collect()
}

/// The Secrets' decoded files: secret name → file name → bytes.
fn secrets(objects: &[Value]) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    kind(objects, "Secret")
        .into_iter()
        .map(|s| {
            let files = s["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap();
                    (k.clone(), bytes)
                })
                .collect();
            (s["metadata"]["name"].as_str().unwrap().to_owned(), files)
        })
        .collect()
}

/// Secrets a pod template mounts (volumes and projected sources).
fn mounted_secrets(template: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for volume in template["spec"]["volumes"].as_array().unwrap() {
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            names.insert(name.to_owned());
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(name) = source["secret"]["name"].as_str() {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .map(|m| m.iter().all(|(k, v)| labels[k] == *v))
        .unwrap_or(true)
}

fn component(template_or_selector: &Value) -> String {
    template_or_selector[k8s::COMPONENT_LABEL]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The flows the policies allow into (`ingress`) or out of (`egress`) pods labelled `labels`:
/// (peer description, protocol/port).
fn flows(objects: &[Value], labels: &Value, direction: &str) -> BTreeSet<(String, String)> {
    let types = if direction == "ingress" {
        "Ingress"
    } else {
        "Egress"
    };
    let peer_key = if direction == "ingress" { "from" } else { "to" };
    let mut allowed = BTreeSet::new();
    for policy in kind(objects, "NetworkPolicy") {
        let spec = &policy["spec"];
        if !labels_match(&spec["podSelector"], labels)
            || !spec["policyTypes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == types)
        {
            continue;
        }
        for rule in spec[direction].as_array().into_iter().flatten() {
            let peers = rule[peer_key]
                .as_array()
                .expect("every rule names its peers");
            let ports = rule["ports"]
                .as_array()
                .expect("every rule names its ports");
            for peer in peers {
                let who = if peer["namespaceSelector"].is_object() {
                    format!(
                        "ns:{} pod:{}",
                        peer["namespaceSelector"], peer["podSelector"]["matchLabels"]
                    )
                } else {
                    format!("pod:{}", component(&peer["podSelector"]["matchLabels"]))
                };
                assert!(peer["ipBlock"].is_null(), "no ipBlock peers");
                for port in ports {
                    allowed.insert((
                        who.clone(),
                        format!("{}/{}", port["protocol"].as_str().unwrap(), port["port"]),
                    ));
                }
            }
        }
    }
    allowed
}

fn pod_labels(component: &str) -> Value {
    serde_json::json!({
        k8s::NAME_LABEL: k8s::APP,
        k8s::COMPONENT_LABEL: component,
    })
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Every secret value of the directory: whole files, and each high-entropy token of them
/// (passwords, key text, PEM lines: at least 20 characters of base64's alphabet with letters and
/// digits), so that a value quoted inside another text is found too.
fn secret_values(dir: &Path) -> Vec<String> {
    let mut values = Vec::new();
    for file in layout::SECRET_FILES
        .iter()
        .chain(cluster_dir::CLUSTER_SECRET_FILES)
    {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        values.push(text.trim().to_owned());
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
            if token.len() >= 20
                && token.chars().any(|c| c.is_ascii_digit())
                && token.chars().any(|c| c.is_ascii_alphabetic())
            {
                values.push(token.to_owned());
            }
        }
    }
    values.retain(|v| v.len() >= 16);
    values
}

/// Every check of one rendering; returns the built objects of the overlay.
fn check(dir: &Path, out: &Path, topology: Topology) -> Vec<Value> {
    let t = topology.dir_name();
    let overlay = out.join(k8s::OVERLAYS_DIR).join(t);
    let objects = build(&overlay);
    let cluster = topology == Topology::Cluster;
    let ns = k8s::DEFAULT_NAMESPACE;

    // Every namespaced object is in the namespace; the namespace enforces `restricted`, pinned.
    let namespace = named(&objects, "Namespace", ns);
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    let version = labels["pod-security.kubernetes.io/enforce-version"]
        .as_str()
        .unwrap();
    assert!(
        version.starts_with("v1.") && version != "latest",
        "{version}"
    );
    assert_eq!(version, k8s::POD_SECURITY_VERSION);
    for o in &objects {
        if o["kind"] != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], ns, "{}", o["metadata"]["name"]);
        }
    }

    // §3 on every pod template.
    let templates = pod_templates(&objects);
    let expected_workloads = if cluster { 3 } else { 2 };
    assert_eq!(templates.len(), expected_workloads, "{templates:?}");
    let all_secrets = secrets(&objects);
    for (name, template) in &templates {
        let spec = &template["spec"];
        assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for forbidden in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(
                spec[forbidden].is_null() || spec[forbidden] == false,
                "{name} {forbidden}"
            );
        }
        let account = spec["serviceAccountName"].as_str().unwrap();
        let sa = named(&objects, "ServiceAccount", account);
        assert_eq!(sa["automountServiceAccountToken"], false, "{account}");
        let containers: Vec<&Value> = spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(spec["initContainers"].as_array().into_iter().flatten())
            .collect();
        assert!(!containers.is_empty());
        for c in containers {
            let sc = &c["securityContext"];
            let who = format!("{name}/{}", c["name"]);
            assert_eq!(sc["runAsNonRoot"], true, "{who}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{who}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{who}"
            );
            assert!(sc["capabilities"]["add"].is_null(), "{who}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{who}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{who}");
            assert_ne!(sc["privileged"], true, "{who}");
            assert!(sc["runAsUser"].as_u64().unwrap() > 0, "{who}");
            for section in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        c["resources"][section][resource].is_string(),
                        "{who} {section}.{resource}"
                    );
                }
            }
            // No secret through the environment, only as mounted files.
            for env in c["env"].as_array().into_iter().flatten() {
                assert!(env["valueFrom"]["secretKeyRef"].is_null(), "{who}");
            }
            for from in c["envFrom"].as_array().into_iter().flatten() {
                assert!(from["secretRef"].is_null(), "{who}");
            }
            // Mounted as directories: never a subPath (a rotated Secret must reach the pod).
            for m in c["volumeMounts"].as_array().unwrap() {
                assert!(
                    m["subPath"].is_null() && m["subPathExpr"].is_null(),
                    "{who}"
                );
            }
            // The probes: the server's --healthcheck, a TLS PING as cache_health.
            let component = component(&template["metadata"]["labels"]);
            let probes = ["startupProbe", "readinessProbe", "livenessProbe"];
            match component.as_str() {
                k8s::BACKEND_COMPONENT => {
                    for p in probes {
                        assert_eq!(
                            c[p]["exec"]["command"],
                            serde_json::json!(["sealcache-server", "--healthcheck"]),
                            "{who} {p}"
                        );
                    }
                }
                k8s::REDIS_COMPONENT => {
                    for p in probes {
                        let cmd = c[p]["exec"]["command"][2].as_str().unwrap();
                        for needle in [
                            "REDISCLI_AUTH=\"$(cat /run/secrets/redis/redis_health_password)\"",
                            "redis-cli",
                            " --tls ",
                            "--cacert /run/secrets/tls/ca.crt",
                            "--user cache_health",
                            " ping",
                            "grep -q PONG",
                        ] {
                            assert!(cmd.contains(needle), "{who} {p}: {needle}");
                        }
                    }
                }
                _ => {}
            }
        }
        // No volume from the host, and every Secret mounted exists in the output.
        for volume in spec["volumes"].as_array().unwrap() {
            assert!(volume["hostPath"].is_null(), "{name}");
        }
        for secret in mounted_secrets(template) {
            assert!(all_secrets.contains_key(&secret), "{name} mounts {secret}");
        }
    }

    // The CA private key is in no Secret; cache_admin's password only in the formation's,
    // which only the formation Job mounts.
    let ca_key = std::fs::read(dir.join(layout::CA_KEY)).unwrap();
    let admin = std::fs::read(dir.join(layout::ADMIN_PASSWORD)).unwrap();
    for (secret, files) in &all_secrets {
        for bytes in files.values() {
            assert_ne!(bytes, &ca_key, "{secret} holds the CA key");
            if secret != k8s::ADMIN_SECRET {
                assert_ne!(bytes, &admin, "{secret} holds the admin password");
            }
        }
    }
    assert_eq!(all_secrets.contains_key(k8s::ADMIN_SECRET), cluster);
    for (name, template) in &templates {
        let mounts_admin = mounted_secrets(template).contains(k8s::ADMIN_SECRET);
        assert_eq!(
            mounts_admin,
            name == &format!("Job/{}", k8s::FORMATION),
            "{name}"
        );
    }
    // The Secrets are the directory's files: secrets/redis/ and secrets/backend/ whole.
    for (secret, sub) in [
        (k8s::REDIS_SECRET, layout::REDIS_SECRETS_DIR),
        (k8s::BACKEND_SECRET, layout::BACKEND_SECRETS_DIR),
    ] {
        let on_disk: BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        assert_eq!(all_secrets[secret], on_disk, "{secret}");
    }
    assert_eq!(
        all_secrets[k8s::API_KEY_SECRET]["api_key"],
        std::fs::read(dir.join(layout::API_KEY)).unwrap()
    );
    // The backend never gets the server key.
    let backend_template = &named(&objects, "Deployment", k8s::BACKEND)["spec"]["template"];
    assert!(!mounted_secrets(backend_template).contains(k8s::SERVER_TLS_SECRET));
    assert!(!mounted_secrets(backend_template).contains(k8s::REDIS_SECRET));

    // No secret value of the directory in any object but a Secret, nor in any file outside the
    // secret output (raw or base64).
    let values = secret_values(dir);
    assert!(values.len() >= 8, "{}", values.len());
    let mut public_text = String::new();
    for o in &objects {
        if o["kind"] != "Secret" {
            public_text.push_str(&o.to_string());
        }
    }
    for entry in walk(out) {
        let relative = entry.strip_prefix(out).unwrap();
        if !relative.starts_with(k8s::SECRETS_DIR) {
            public_text.push_str(&std::fs::read_to_string(&entry).unwrap());
        }
    }
    for v in &values {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v);
        assert!(
            !public_text.contains(v.as_str()) && !public_text.contains(&b64),
            "a secret value appears outside the Secrets"
        );
    }
    for config in kind(&objects, "ConfigMap") {
        for value in config["data"].as_object().unwrap().values() {
            assert!(!value.as_str().unwrap().contains("PRIVATE KEY"));
        }
    }

    // Network: default deny for ingress and egress.
    let deny = kind(&objects, "NetworkPolicy")
        .into_iter()
        .find(|p| {
            p["spec"]["podSelector"] == serde_json::json!({})
                && p["spec"]["policyTypes"] == serde_json::json!(["Ingress", "Egress"])
        })
        .expect("a default-deny policy");
    assert!(deny["spec"]["ingress"].is_null() && deny["spec"]["egress"].is_null());
    let redis = pod_labels(k8s::REDIS_COMPONENT);
    let backend = pod_labels(k8s::BACKEND_COMPONENT);
    let tls = format!("TCP/{}", k8s::REDIS_PORT);
    let bus = format!("TCP/{}", k8s::BUS_PORT);
    let mut redis_in = set(&[("pod:backend", &tls)]);
    if cluster {
        redis_in.extend(set(&[
            ("pod:redis", &tls),
            ("pod:redis", &bus),
            ("pod:cluster-formation", &tls),
        ]));
    }
    assert_eq!(flows(&objects, &redis, "ingress"), redis_in);
    let redis_out = if cluster {
        set(&[("pod:redis", &tls), ("pod:redis", &bus)])
    } else {
        BTreeSet::new()
    };
    assert_eq!(flows(&objects, &redis, "egress"), redis_out);
    let dns_peer = "ns:{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"kube-system\"}} pod:{\"k8s-app\":\"kube-dns\"}";
    assert_eq!(
        flows(&objects, &backend, "egress"),
        set(&[
            ("pod:redis", &tls),
            (dns_peer, "UDP/53"),
            (dns_peer, "TCP/53")
        ])
    );
    let backend_in = flows(&objects, &backend, "ingress");
    assert_eq!(backend_in.len(), 1);
    assert!(backend_in.iter().all(|(peer, port)| {
        peer.contains(k8s::API_CLIENT_LABEL) && port == &format!("TCP/{}", k8s::API_PORT)
    }));

    // Nothing exposes Redis (or anything) outside the cluster.
    assert!(kind(&objects, "Ingress").is_empty());
    for svc in kind(&objects, "Service") {
        let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        assert_eq!(ty, "ClusterIP", "{}", svc["metadata"]["name"]);
        assert!(svc["spec"]["externalIPs"].is_null());
        for port in svc["spec"]["ports"].as_array().unwrap() {
            assert!(port["nodePort"].is_null());
        }
    }

    // Disruption budgets: the backend always; Redis in a cluster (one node at a time).
    let pdbs = kind(&objects, "PodDisruptionBudget");
    let covers = |labels: &Value| {
        pdbs.iter()
            .any(|p| labels_match(&p["spec"]["selector"], labels))
    };
    assert!(covers(&backend));
    assert_eq!(covers(&redis), cluster);

    // Topology.
    let set_ = named(&objects, "StatefulSet", "redis");
    let backend_deploy = named(&objects, "Deployment", k8s::BACKEND);
    assert_eq!(backend_deploy["spec"]["replicas"], 2);
    if cluster {
        assert_eq!(set_["spec"]["replicas"], 6);
        assert_eq!(set_["spec"]["serviceName"], k8s::CLUSTER_SERVICE);
        let headless = named(&objects, "Service", k8s::CLUSTER_SERVICE);
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let spec = &set_["spec"]["template"]["spec"];
        let anti =
            &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(anti[0]["topologyKey"], "kubernetes.io/hostname");
        assert!(labels_match(&anti[0]["labelSelector"], &redis));
        assert!(
            spec["topologySpreadConstraints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["topologyKey"] == "kubernetes.io/hostname"
                    && c["whenUnsatisfiable"] == "DoNotSchedule")
        );
        let command = spec["containers"][0]["command"].to_string();
        assert!(command.contains("--cluster-announce-hostname"), "{command}");
        assert!(command.contains("$(POD_NAME).redis-cluster.$(POD_NAMESPACE).svc.cluster.local"));
        let claims = &set_["spec"]["volumeClaimTemplates"];
        assert_eq!(
            claims[0]["spec"]["resources"]["requests"]["storage"],
            k8s::NODE_STATE_SIZE
        );
        let job = named(&objects, "Job", k8s::FORMATION);
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        // The node certificate names every pod DNS name.
        let cert = &all_secrets[k8s::SERVER_TLS_SECRET]["redis.crt"];
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert).unwrap();
        let parsed = pem.parse_x509().unwrap();
        let sans = format!(
            "{:?}",
            parsed.subject_alternative_name().unwrap().unwrap().value
        );
        for i in 0..6 {
            let host = k8s::cluster_node_host(i, ns, "cluster.local");
            assert!(sans.contains(&host), "{host} not in {sans}");
        }
        let settings = named(&objects, "ConfigMap", k8s::SETTINGS_CONFIG);
        let seeds = settings["data"]["REDIS_CLUSTER_NODES"].as_str().unwrap();
        assert!(
            seeds.starts_with("rediss://redis-0.redis-cluster.sealcache.svc.cluster.local:6379,")
        );
        assert!(settings["data"]["REDIS_URL"].is_null());
        assert!(all_secrets[k8s::SERVER_TLS_SECRET].contains_key("node.key"));
    } else {
        assert_eq!(set_["spec"]["replicas"], 1);
        let settings = named(&objects, "ConfigMap", k8s::SETTINGS_CONFIG);
        assert_eq!(settings["data"]["REDIS_URL"], "rediss://redis:6379/0");
        assert_eq!(settings["data"]["API_KEY_FILE"], "/run/secrets/api/api_key");
    }
    objects
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

#[test]
fn a_single_node_directory_renders_hardened_manifests() {
    let (tmp, dir) = generate(false);
    let out = tmp.path().join("k8s");
    let report = k8s::render(&dir, &out, &RenderOptions::default()).unwrap();
    assert_eq!(report.topology, Topology::Single);
    assert_eq!(report.server_certificate, ServerCertificate::FromDirectory);
    check(&dir, &out, Topology::Single);
    // The base builds on its own too.
    let base = build(&out.join(k8s::BASE_DIR));
    assert!(!base.is_empty());
    // The secret output: 0700 directories, 0600 files, ignored by the output's .gitignore.
    assert_eq!(mode(&out.join(k8s::SECRETS_DIR)), 0o700);
    assert_eq!(mode(&report.secrets), 0o700);
    assert_eq!(mode(&report.secrets.join("secrets.yaml")), 0o600);
    assert_eq!(
        std::fs::read_to_string(out.join(k8s::GITIGNORE)).unwrap(),
        k8s::GITIGNORE_TEXT
    );
    assert_eq!(mode(&report.overlay.join("redis.yaml")), 0o644);
    // A mismatch of topology is refused, not guessed.
    assert!(k8s::plan(&dir, &out, &RenderOptions::new(true)).is_err());
    // Rendering again changes nothing (deterministic output).
    let before: Vec<(PathBuf, Vec<u8>)> = walk(&out)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let again = k8s::render(&dir, &out, &RenderOptions::default()).unwrap();
    assert!(again.removed.is_empty());
    for (path, bytes) in before {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
}

#[test]
fn a_cluster_directory_renders_hardened_manifests_with_node_certificates_for_the_pods() {
    let (tmp, dir) = generate(true);
    let out = tmp.path().join("k8s");
    let report = k8s::render(&dir, &out, &RenderOptions::new(true)).unwrap();
    assert_eq!(report.topology, Topology::Cluster);
    assert_eq!(report.server_certificate, ServerCertificate::Issued);
    assert_eq!(
        mode(&report.secrets.join(k8s::SERVER_TLS_DIR).join("redis.key")),
        0o600
    );
    check(&dir, &out, Topology::Cluster);
    // Rendered again: the issued certificate is kept, not churned.
    let secrets = std::fs::read(report.secrets.join("secrets.yaml")).unwrap();
    let again = k8s::render(&dir, &out, &RenderOptions::new(true)).unwrap();
    assert_eq!(again.server_certificate, ServerCertificate::Reused);
    assert_eq!(
        std::fs::read(report.secrets.join("secrets.yaml")).unwrap(),
        secrets
    );
    // Another namespace needs other names: issued again.
    let other = k8s::render(&dir, &out, &RenderOptions::new(true).namespace("llm")).unwrap();
    assert_eq!(other.server_certificate, ServerCertificate::Issued);
    // A single-node rendering of a cluster directory is refused.
    assert!(k8s::plan(&dir, &out, &RenderOptions::default()).is_err());
}

#[test]
fn a_cluster_directory_whose_certificate_names_the_pods_needs_no_ca_key() {
    let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
        .detect(FeatureContext::SecurityEnforcement);
    let config = SecureConfigGenerator::generate_for_environment(&detected, None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deployment");
    let opts = DeploymentOptions {
        extra_server_names: vec!["*.redis-cluster.sealcache.svc.cluster.local".to_owned()],
        ..DeploymentOptions::default()
    };
    write_cluster_deployment(&config, &dir, &opts, &ClusterOptions::default()).unwrap();
    // Without the CA key at all, the directory's certificate is used as it is.
    std::fs::remove_file(dir.join(layout::CA_KEY)).unwrap();
    let out = tmp.path().join("k8s");
    let report = k8s::render(&dir, &out, &RenderOptions::new(true)).unwrap();
    assert_eq!(report.server_certificate, ServerCertificate::FromDirectory);
    assert!(!report.secrets.join(k8s::SERVER_TLS_DIR).exists());
}

/// A link, a FIFO or a huge file left among the secrets (a process in the backend owns the files
/// of `secrets/backend/` and `secrets/redis/`) is refused: never read through into a Secret,
/// never waited on.
#[test]
fn a_link_or_fifo_among_the_secrets_is_refused_never_rendered() {
    let (tmp, dir) = generate(false);
    let outside = tmp.path().join("host-only");
    std::fs::write(&outside, "HOST-ONLY-CONTENT").unwrap();
    let out = tmp.path().join("k8s");
    for (rel, make) in [
        ("secrets/backend/planted", "link"),
        ("secrets/redis/planted", "link"),
        ("secrets/backend/planted", "fifo"),
        ("secrets/api_key", "link"),
    ] {
        let path = dir.join(rel);
        let saved = std::fs::read(&path).ok();
        let _ = std::fs::remove_file(&path);
        if make == "link" {
            std::os::unix::fs::symlink(&outside, &path).unwrap();
        } else {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }
        let err = k8s::plan(&dir, &out, &RenderOptions::default())
            .expect_err(&format!("{rel} as a {make}"));
        assert!(
            err.to_string().contains("planted") || err.to_string().contains("api_key"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        if let Some(bytes) = saved {
            std::fs::write(&path, bytes).unwrap();
        }
    }
    // Put back, the directory renders again, and nothing from outside was ever written.
    let plan = k8s::plan(&dir, &out, &RenderOptions::default()).unwrap();
    plan.write().unwrap();
    for path in walk(&out) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("HOST-ONLY-CONTENT"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_settings_file_that_carries_a_secret_is_refused() {
    let (tmp, dir) = generate(false);
    let env = dir.join(layout::ENV_FILE);
    let password = std::fs::read_to_string(dir.join(layout::APP_PASSWORD)).unwrap();
    let original = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, format!("{original}SOME_SETTING={password}\n")).unwrap();
    let err = k8s::plan(&dir, &tmp.path().join("k8s"), &RenderOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("SOME_SETTING") && !text.contains(password.trim()),
        "{text}"
    );
    // Every secret setting, under its deprecated names too (the template's `REDIS_AUTH`), is
    // refused whatever its value: the list is the settings' declarations.
    for variable in [
        "REDIS_PASSWORD",
        "REDIS_AUTH",
        "CACHE_REDIS_PASSWORD",
        "REDIS_MONITOR_PASSWORD",
        "REDIS_CACHE_PASSWORD",
        "REDIS_ENCRYPTION_KEY",
        "API_KEY",
        "ADDITIONAL_API_KEYS",
        "REDIS_ADMIN_PASSWORD",
    ] {
        std::fs::write(&env, format!("{original}{variable}=not-the-real-one\n")).unwrap();
        let err = k8s::plan(&dir, &tmp.path().join("k8s"), &RenderOptions::default())
            .expect_err(variable);
        assert!(
            matches!(&err, sealcache_ops::Error::SecretInSettings { variable: v } if v == variable),
            "{variable}: {err}"
        );
    }
    // A secret's `*_FILE` twin holds a path, which a ConfigMap may carry.
    std::fs::write(
        &env,
        format!("{original}API_KEY_FILE=/run/secrets/api_key\n"),
    )
    .unwrap();
    assert!(!matches!(
        k8s::plan(&dir, &tmp.path().join("k8s"), &RenderOptions::default()),
        Err(sealcache_ops::Error::SecretInSettings { .. })
    ));
    // Not a deployment at all.
    assert!(matches!(
        k8s::plan(
            tmp.path(),
            &tmp.path().join("k8s"),
            &RenderOptions::default()
        ),
        Err(sealcache_ops::Error::NotADeployment { .. })
    ));
}
