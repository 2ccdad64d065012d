//! Reading the fixture tree.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `fixtures/<subject>/v<N>` folder.
pub struct FixtureSet {
    pub event_type: String,
    pub version: u32,
    pub dir: PathBuf,
}

impl FixtureSet {
    /// `(file name, document)` of every fixture in `valid/` or `invalid/`.
    pub fn documents(&self, valid: bool) -> Vec<(String, Value)> {
        let folder = self.dir.join(if valid { "valid" } else { "invalid" });
        let mut files: Vec<_> = fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = fs::read_to_string(&path).unwrap();
                let doc = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    doc,
                )
            })
            .collect()
    }

    /// The JSON path each invalid fixture must be rejected at.
    pub fn expected_errors(&self) -> BTreeMap<String, String> {
        let path = self.dir.join("expected-errors.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    pub fn label(&self) -> String {
        format!("{} v{}", self.event_type, self.version)
    }
}

/// Every fixture set on disk.
pub fn fixture_sets() -> Vec<FixtureSet> {
    let root = crate_dir().join("fixtures");
    let mut sets = Vec::new();
    for subject in fs::read_dir(&root).unwrap() {
        let subject = subject.unwrap().path();
        for version in fs::read_dir(&subject).unwrap() {
            let dir = version.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let version = name
                .strip_prefix('v')
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{}: version folders are named v<N>", dir.display()));
            sets.push(FixtureSet {
                event_type: subject.file_name().unwrap().to_string_lossy().into_owned(),
                version,
                dir,
            });
        }
    }
    sets.sort_by(|a, b| (&a.event_type, a.version).cmp(&(&b.event_type, b.version)));
    sets
}

pub fn fixture_set(event_type: &str, version: u32) -> FixtureSet {
    fixture_sets()
        .into_iter()
        .find(|s| s.event_type == event_type && s.version == version)
        .unwrap_or_else(|| panic!("no fixtures for {event_type} v{version}"))
}

pub fn to_bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap()
}
