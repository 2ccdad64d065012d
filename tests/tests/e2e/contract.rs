//! The HTTP contracts, checked from outside by Schemathesis (a Python tool,
//! pinned in `infra/dev/requirements.txt`): every check, against both
//! services' OpenAPI documents, with an admin key. It draws requests from
//! the documents (valid ones must be accepted, invalid ones refused, every
//! answer must match its declared status, headers and schema) and follows
//! the links between operations (create, then read, change, delete).
//! Deterministic generation with a fixed seed: a run is repeatable, so CI
//! cannot flake on a draw.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::system::System;

/// The `st` command of the tools venv, or `None` (the test skips) where it
/// is missing and backends are not required.
fn schemathesis() -> Option<PathBuf> {
    let st = system_tests::tools_venv().join("bin").join("st");
    if st.exists() {
        return Some(st);
    }
    let message = format!(
        "schemathesis is not installed at {} (run infra/dev/install-backends.sh)",
        st.display()
    );
    assert!(!system_tests::backends_required(), "{message}");
    eprintln!("SKIPPED: {message}");
    None
}

fn run(st: &Path, repo: &Path, base: &str, key: &str) -> (bool, String) {
    let output = Command::new(st)
        .current_dir(repo)
        .arg("--config-file")
        .arg(repo.join("schemathesis.toml"))
        .args(["run", &format!("{base}/api/v1/openapi.json"), "--url", base])
        .args([
            "--checks",
            "all",
            "--seed",
            "20261129",
            "--generation-deterministic",
        ])
        .args(["--max-examples", "60", "--request-timeout", "10"])
        .args(["-H", &format!("X-Api-Key: {key}")])
        .args(["--no-color"])
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn both_services_answer_exactly_as_their_openapi_documents_say() {
    let Some(st) = schemathesis() else {
        return;
    };
    // Schemathesis sends every operation without a key and with a wrong
    // one on purpose, and expects 401; the per-address throttle on failed
    // keys (30 a minute, tested in each service's access tests) would turn
    // those into 429 once the operations outnumber it.
    let Some(system) = System::start_custom(
        &[("SHORTENER_AUTH_FAILURES_PER_MINUTE", "100000".into())],
        &[("ANALYTICS_AUTH_FAILURES_PER_MINUTE", "100000".into())],
    ) else {
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // A link with clicks, so analytics has something to answer about (its
    // code is the one schemathesis.toml gives the stats operation).
    let code = "contract-link";
    let answer = system.post_link(&serde_json::json!({
        "url": "https://example.com/contract",
        "alias": code,
    }));
    assert_eq!(answer.status, 201, "{}", answer.body);
    for _ in 0..3 {
        assert_eq!(system.follow(code, "").status, 302);
    }
    system.eventually("analytics counts the clicks", || {
        system.stats(code).filter(|s| s["total_clicks"] == 3)
    });

    for (name, service) in [
        ("shortener", &system.shortener),
        ("analytics", &system.analytics),
    ] {
        let (passed, report) = run(&st, &repo, &service.url(), &system.key);
        let summary: String = report
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("schemathesis against {name}:\n{summary}");
        assert!(passed, "schemathesis found failures in {name}:\n{report}");
    }
}
