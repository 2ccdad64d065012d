//! The deployment files hold what `make up` with Docker relies on: the
//! compose file is valid for a compose tool (checked with `docker-compose
//! config`, no engine needed), every image is pinned, every service has a
//! health check and waits for what it needs, and the services are built by
//! the workspace's multi-stage Dockerfile. The Kubernetes manifests
//! (`infra/k8s`) validate against the Kubernetes schemas, and every service
//! there has its probes, limits, grace period, budget and autoscaler.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

fn compose_file() -> Value {
    let text = std::fs::read_to_string(repo().join("infra/docker-compose.yml"))
        .expect("infra/docker-compose.yml");
    let mut file: Value = serde_norway::from_str(&text).expect("YAML");
    // The cluster profile's services share their settings through `<<:`.
    file.apply_merge().expect("YAML merge keys");
    file
}

fn services() -> BTreeMap<String, Value> {
    serde_norway::from_value(compose_file()["services"].clone()).expect("a services map")
}

#[test]
fn a_compose_tool_accepts_the_file() {
    let Some(tool) =
        system_tests::process::find_executable("docker-compose", "DOCKER_COMPOSE_BIN", &[])
    else {
        assert!(
            !system_tests::backends_required(),
            "docker-compose is not installed (apt-get install docker-compose)"
        );
        eprintln!("SKIPPED: docker-compose is not installed");
        return;
    };
    // Secrets come from the env file `make up` writes; without one the
    // file must refuse, never fall back to a default.
    let without = Command::new(&tool)
        .args(["-f", "infra/docker-compose.yml", "config", "-q"])
        .current_dir(repo())
        .env_remove("URL_SHORTENER_API_KEY")
        .env_remove("CLICKHOUSE_PASSWORD")
        .env_remove("CONSOLE_SESSION_SECRET")
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .output()
        .expect("docker-compose runs");
    assert!(
        !without.status.success(),
        "the compose file has a default for a secret"
    );
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("compose.env");
    std::fs::write(
        &env_file,
        format!(
            "URL_SHORTENER_API_KEY={}\nCLICKHOUSE_PASSWORD=p\nCONSOLE_SESSION_SECRET={}\n\
             GRAFANA_ADMIN_PASSWORD=g\n",
            "k".repeat(64),
            "s".repeat(64)
        ),
    )
    .unwrap();
    for profile in [&[][..], &["--profile", "cluster"][..]] {
        let output = Command::new(&tool)
            .arg("--env-file")
            .arg(&env_file)
            .args(["-f", "infra/docker-compose.yml"])
            .args(profile)
            .args(["config", "-q"])
            .current_dir(repo())
            .output()
            .expect("docker-compose runs");
        assert!(
            output.status.success(),
            "docker-compose {profile:?} config: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The environment of a compose service, as a map.
fn environment(service: &Value) -> BTreeMap<String, String> {
    serde_norway::from_value::<BTreeMap<String, Value>>(service["environment"].clone())
        .expect("an environment map")
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| serde_norway::to_string(&v).unwrap().trim().to_owned());
            (k, v)
        })
        .collect()
}

#[test]
fn the_compose_cluster_profile_mirrors_make_cluster() {
    let services = services();
    let cluster: BTreeMap<&String, &Value> = services
        .iter()
        .filter(|(_, s)| {
            s["profiles"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| p.as_str() == Some("cluster")))
        })
        .collect();
    let named = |prefix: &str| -> Vec<&Value> {
        cluster
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, s)| *s)
            .collect()
    };
    // Three NATS nodes, each named, all routed to each other.
    let nats = named("nats-");
    assert_eq!(nats.len(), 3, "three NATS nodes");
    let mut names = BTreeSet::new();
    for node in &nats {
        let args: Vec<&str> = node["command"]
            .as_sequence()
            .expect("a command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
        names.insert(after("--server_name").expect("a server name"));
        assert!(args.contains(&"-js"), "JetStream on every node");
        let routes = after("--routes").expect("routes");
        assert_eq!(
            routes.split(',').count(),
            3,
            "routes to all three: {routes}"
        );
    }
    assert_eq!(names.len(), 3, "distinct server names");
    // A MongoDB replica set of three, initiated with all three.
    let mongo = named("mongo-");
    assert_eq!(mongo.len(), 3, "three MongoDB members");
    let initiation =
        serde_norway::to_string(&cluster[&"mongo-1".to_owned()]["healthcheck"]).expect("YAML");
    for member in ["mongo-1:27017", "mongo-2:27017", "mongo-3:27017"] {
        assert!(initiation.contains(member), "rs.initiate lacks {member}");
    }
    // Two ClickHouse replicas with Keeper, their config files present.
    assert!(cluster.contains_key(&"clickhouse-keeper".to_owned()));
    let replicas = named("clickhouse-");
    let servers: Vec<&&Value> = replicas
        .iter()
        .filter(|s| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.contains("clickhouse-server"))
        })
        .collect();
    assert_eq!(servers.len(), 2, "two ClickHouse servers");
    let mut replica_names = BTreeSet::new();
    for server in servers {
        replica_names.insert(environment(server)["CLICKHOUSE_REPLICA"].clone());
    }
    assert_eq!(replica_names.len(), 2, "each replica names itself");
    for service in cluster.values() {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap();
            if source.starts_with("./") {
                assert!(
                    repo().join("infra").join(source).exists(),
                    "{source} is mounted but missing"
                );
            }
        }
    }
    // Two of each service, on every NATS node and every replica.
    for (prefix, count) in [("shortener-", 2), ("analytics-", 2)] {
        assert_eq!(named(prefix).len(), count, "{prefix}*");
    }
    for shortener in named("shortener-") {
        let env = environment(shortener);
        assert_eq!(env["SHORTENER_NATS_URL"].split(',').count(), 3);
        assert_eq!(env["SHORTENER_STREAM_REPLICAS"], "3");
        assert!(env["SHORTENER_MONGODB_URI"].contains("replicaSet=rs-cluster"));
    }
    for analytics in named("analytics-") {
        let env = environment(analytics);
        assert_eq!(env["ANALYTICS_NATS_URL"].split(',').count(), 3);
        assert_eq!(env["ANALYTICS_STREAM_REPLICAS"], "3");
        assert_eq!(env["ANALYTICS_CLICKHOUSE_URL"].split(',').count(), 2);
        assert_eq!(env["ANALYTICS_CLICKHOUSE_REPLICATED"], "true");
    }
}

#[test]
fn the_whole_production_stack_is_there_with_pinned_images_and_health_checks() {
    let services = services();
    for name in [
        "nats",
        "mongodb",
        "clickhouse",
        "shortener",
        "analytics",
        "console",
    ] {
        assert!(services.contains_key(name), "service {name} is missing");
    }
    for (name, service) in &services {
        let image = service["image"].as_str().unwrap_or_default();
        if service.get("build").is_none() {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                tag.trim_start_matches('v')
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit()),
                "{name}: image {image:?} is not pinned to a version"
            );
        }
        let test = &service["healthcheck"]["test"];
        assert!(
            test.is_sequence() || test.is_string(),
            "{name} has no health check"
        );
    }
    for (name, needs) in [
        ("shortener", ["nats", "mongodb"]),
        ("analytics", ["nats", "clickhouse"]),
        ("console", ["shortener", "analytics"]),
    ] {
        for need in needs {
            assert_eq!(
                services[name]["depends_on"][need]["condition"].as_str(),
                Some("service_healthy"),
                "{name} must wait for a healthy {need}"
            );
        }
        let build = &services[name]["build"];
        assert_eq!(build["dockerfile"].as_str(), Some("infra/Dockerfile"));
        assert_eq!(build["args"]["SERVICE"].as_str(), Some(name));
    }
    // Prometheus and Grafana mount the repository's config, rules and
    // dashboards.
    for (name, path) in [
        ("prometheus", "prometheus"),
        ("grafana", "grafana/provisioning"),
        ("grafana", "grafana/dashboards"),
    ] {
        let mounts = serde_norway::to_string(&services[name]["volumes"]).unwrap();
        assert!(
            mounts.contains(&format!("./{path}:")),
            "{name} mounts {path}"
        );
        assert!(repo().join("infra").join(path).is_dir(), "infra/{path}");
    }
    let mongo = services["mongodb"]["command"].as_sequence().unwrap();
    assert!(
        mongo.iter().any(|a| a.as_str() == Some("--replSet")),
        "transactions need a replica set"
    );
}

#[test]
fn the_dockerfile_is_multi_stage_and_ships_only_the_binary() {
    let text = std::fs::read_to_string(repo().join("infra/Dockerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(
        stages.len() >= 2,
        "a build stage and a runtime stage: {stages:?}"
    );
    let runtime = stages.last().unwrap();
    assert!(
        !runtime.contains("rust:"),
        "the runtime image has no toolchain: {runtime}"
    );
    for stage in &stages {
        let image = stage.split_whitespace().nth(1).unwrap();
        assert!(
            image
                .rsplit_once(':')
                .is_some_and(|(_, t)| t.chars().next().is_some_and(|c| c.is_ascii_digit())),
            "{image} is not pinned"
        );
    }
    assert!(text.contains("USER "), "the service does not run as root");
}

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.30.0";

/// Every resource of `infra/k8s/base` (one per YAML document), with its file.
fn k8s_resources() -> Vec<(PathBuf, Value)> {
    let base = repo().join("infra/k8s/base");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&base)
        .expect("infra/k8s/base")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(&path).expect("a manifest");
            text.split("\n---\n")
                .map(|doc| serde_norway::from_str::<Value>(doc).expect("YAML"))
                .map(|doc| (path.clone(), doc))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names of `key` at any depth of `value` whose map also has `name:
/// <of>` (the keys of `secretKeyRef`s and `configMapKeyRef`s).
fn keys_of(value: &Value, reference: &str, of: &str, found: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                if k.as_str() == Some(reference) && v["name"].as_str() == Some(of) {
                    found.insert(v["key"].as_str().expect("a key").to_owned());
                }
                keys_of(v, reference, of, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| keys_of(v, reference, of, found)),
        _ => {}
    }
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let venv_tool = system_tests::tools_venv()
        .join("bin")
        .join("kubernetes-validate");
    let Some(tool) = system_tests::process::find_executable(
        "kubernetes-validate",
        "KUBERNETES_VALIDATE_BIN",
        &[venv_tool],
    ) else {
        assert!(
            !system_tests::backends_required(),
            "kubernetes-validate is not installed (make backends)"
        );
        eprintln!("SKIPPED: kubernetes-validate is not installed");
        return;
    };
    let files: BTreeSet<PathBuf> = k8s_resources().into_iter().map(|(f, _)| f).collect();
    assert!(files.len() >= 5, "{files:?}");
    let output = Command::new(tool)
        .args(["--strict", "--quiet", "--kubernetes-version", KUBERNETES])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    assert!(
        output.status.success(),
        "kubernetes-validate: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn each_service_has_probes_limits_a_grace_period_a_budget_and_an_autoscaler() {
    let resources = k8s_resources();
    let of_kind = |kind: &str| -> BTreeMap<String, Value> {
        resources
            .iter()
            .filter(|(_, r)| r["kind"].as_str() == Some(kind))
            .map(|(_, r)| {
                (
                    r["metadata"]["name"].as_str().unwrap().to_owned(),
                    r.clone(),
                )
            })
            .collect()
    };
    let deployments = of_kind("Deployment");
    let names: Vec<&str> = deployments.keys().map(String::as_str).collect();
    assert_eq!(names, ["analytics", "console", "shortener"]);
    for (name, deployment) in &deployments {
        let pod = &deployment["spec"]["template"]["spec"];
        // The services drain for at most 25 s (docs/operations.md).
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        assert!(grace > 30, "{name}: grace period {grace} s");
        let container = &pod["containers"][0];
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/ready",
            "{name}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/health",
            "{name}"
        );
        for part in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !container["resources"][part][resource].is_null(),
                    "{name}: no {part}.{resource}"
                );
            }
        }
        for kind in ["Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"] {
            assert!(of_kind(kind).contains_key(name), "{name}: no {kind}");
        }
    }
    assert_eq!(
        of_kind("HorizontalPodAutoscaler")["analytics"]["spec"]["metrics"][0]["external"]["metric"]
            ["name"],
        "analytics_consumer_lag_messages",
        "analytics scales on its consumer lag"
    );
}

#[test]
fn the_overlays_name_existing_files_and_supply_every_key_the_base_reads() {
    let k8s = repo().join("infra/k8s");
    let mut secret_keys = BTreeSet::new();
    let mut config_keys = BTreeSet::new();
    let mut config_data = BTreeSet::new();
    for (_, resource) in k8s_resources() {
        keys_of(
            &resource,
            "secretKeyRef",
            "url-shortener-secrets",
            &mut secret_keys,
        );
        keys_of(
            &resource,
            "configMapKeyRef",
            "url-shortener-config",
            &mut config_keys,
        );
        if resource["metadata"]["name"] == "url-shortener-config" {
            let data: BTreeMap<String, Value> =
                serde_norway::from_value(resource["data"].clone()).expect("data");
            config_data.extend(data.into_keys());
        }
    }
    assert_eq!(config_keys, config_data, "ConfigMap keys read vs defined");
    let readme = std::fs::read_to_string(k8s.join("README.md")).expect("infra/k8s/README.md");
    for key in &secret_keys {
        assert!(readme.contains(&format!("`{key}`")), "README lacks {key}");
    }
    for dir in ["base", "overlays/dev", "overlays/production"] {
        let dir = k8s.join(dir);
        let text =
            std::fs::read_to_string(dir.join("kustomization.yaml")).expect("a kustomization");
        let kustomization: Value = serde_norway::from_str(&text).expect("YAML");
        for resource in kustomization["resources"].as_sequence().expect("resources") {
            let path = dir.join(resource.as_str().expect("a path"));
            assert!(path.exists(), "{} names {}", dir.display(), path.display());
        }
        if dir.ends_with("dev") {
            let generated: BTreeSet<String> = kustomization["secretGenerator"][0]["literals"]
                .as_sequence()
                .expect("literals")
                .iter()
                .map(|l| l.as_str().unwrap().split('=').next().unwrap().to_owned())
                .collect();
            assert_eq!(generated, secret_keys, "the dev Secret's keys");
        }
    }
}

/// The documents of a YAML file under `infra/k8s/backing`.
fn backing(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("infra/k8s/backing").join(file))
        .expect("a backing manifest");
    text.split("\n---\n")
        .map(|doc| serde_norway::from_str::<Value>(doc).expect("YAML"))
        .collect()
}

#[test]
fn the_stores_and_the_broker_come_from_their_operators_and_match_the_config() {
    let config = k8s_resources()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["metadata"]["name"] == "url-shortener-config")
        .expect("the ConfigMap");
    let data = &config["data"];
    // NATS: the chart's 3-node cluster, which NATS_URL lists pod by pod.
    let nats = &backing("nats-values.yaml")[0];
    assert_eq!(nats["config"]["cluster"]["enabled"].as_bool(), Some(true));
    assert_eq!(nats["config"]["jetstream"]["enabled"].as_bool(), Some(true));
    let nodes = nats["config"]["cluster"]["replicas"]
        .as_u64()
        .expect("replicas");
    let urls: Vec<&str> = data["NATS_URL"].as_str().unwrap().split(',').collect();
    assert_eq!(urls.len() as u64, nodes, "NATS_URL lists every node");
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(*url, format!("nats://nats-{i}.nats-headless:4222"));
    }
    let replicas: u64 = data["STREAM_REPLICAS"].as_str().unwrap().parse().unwrap();
    assert!(
        replicas <= nodes && replicas >= 3,
        "streams on 3 of the nodes"
    );
    // MongoDB: a replica set of three through the Community Operator.
    let mongo = &backing("mongodb.yaml")[0];
    assert_eq!(mongo["kind"], "MongoDBCommunity");
    assert_eq!(mongo["spec"]["type"], "ReplicaSet");
    assert_eq!(mongo["spec"]["members"].as_u64(), Some(3));
    // ClickHouse: Altinity's installation, two replicas on Keeper; analytics
    // is given each replica's Service and the replicated schema.
    let clickhouse = backing("clickhouse.yaml");
    let keeper = clickhouse
        .iter()
        .find(|d| d["kind"] == "ClickHouseKeeperInstallation")
        .expect("a Keeper installation");
    let chi = clickhouse
        .iter()
        .find(|d| d["kind"] == "ClickHouseInstallation")
        .expect("a ClickHouse installation");
    let keeper_service = format!("keeper-{}", keeper["metadata"]["name"].as_str().unwrap());
    assert_eq!(
        chi["spec"]["configuration"]["zookeeper"]["nodes"][0]["host"].as_str(),
        Some(keeper_service.as_str())
    );
    let cluster = &chi["spec"]["configuration"]["clusters"][0];
    let count = cluster["layout"]["replicasCount"]
        .as_u64()
        .expect("replicasCount");
    assert!(count >= 2, "replicated");
    let services: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "http://chi-{}-{}-0-{i}:8123",
                chi["metadata"]["name"].as_str().unwrap(),
                cluster["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        data["ANALYTICS_CLICKHOUSE_URL"].as_str(),
        Some(services.join(",").as_str())
    );
    assert_eq!(
        data["ANALYTICS_CLICKHOUSE_REPLICATED"].as_str(),
        Some("true")
    );
    // The password analytics uses is the one the installation sets.
    let users = serde_norway::to_string(&chi["spec"]["configuration"]["users"]).unwrap();
    assert!(users.contains("url-shortener-secrets/clickhouse-password"));
}

/// promtool (Debian's `prometheus`), or `None` outside CI when missing.
fn promtool() -> Option<PathBuf> {
    let tool = system_tests::process::find_executable("promtool", "PROMTOOL_BIN", &[]);
    if tool.is_none() {
        assert!(
            !system_tests::backends_required(),
            "promtool is not installed (make backends: apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool is not installed");
    }
    tool
}

fn promtool_passes(tool: &Path, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(repo().join("infra/prometheus"))
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_prometheus_config_and_alert_rules_are_valid() {
    let Some(tool) = promtool() else {
        return;
    };
    promtool_passes(&tool, &["check", "config", "prometheus.yml"]);
    promtool_passes(&tool, &["check", "rules", "alerts.yml"]);
}

#[test]
fn every_alert_fires_when_it_should_and_not_before() {
    let Some(tool) = promtool() else {
        return;
    };
    promtool_passes(&tool, &["test", "rules", "alerts_test.yml"]);
    // Each alert has a unit test and a runbook in docs/operations.md.
    let rules: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("infra/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let tests = std::fs::read_to_string(repo().join("infra/prometheus/alerts_test.yml")).unwrap();
    let operations = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|heading| {
            heading
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} has no unit test"
        );
        let runbook = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {runbook} is not in docs/operations.md"));
        assert!(
            anchors.contains(anchor),
            "{name}: docs/operations.md has no section #{anchor}"
        );
    }
}
