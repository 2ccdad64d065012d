//! The deployment files hold what `make up` with Docker relies on: the
//! compose file is valid for a compose tool (checked with `docker-compose
//! config`, no engine needed), every image is pinned, every service has a
//! health check and waits for what it needs, and the services are built by
//! the workspace's multi-stage Dockerfile.

use std::collections::BTreeMap;
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
    serde_norway::from_str(&text).expect("YAML")
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
            "URL_SHORTENER_API_KEY={}\nCLICKHOUSE_PASSWORD=p\nCONSOLE_SESSION_SECRET={}\n",
            "k".repeat(64),
            "s".repeat(64)
        ),
    )
    .unwrap();
    let output = Command::new(tool)
        .arg("--env-file")
        .arg(&env_file)
        .args(["-f", "infra/docker-compose.yml", "config", "-q"])
        .current_dir(repo())
        .output()
        .expect("docker-compose runs");
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
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
                tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
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
