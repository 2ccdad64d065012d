//! The AsyncAPI document in docs/ describes every subject and references
//! every schema file, and every reference in it resolves.

use std::collections::BTreeSet;
use std::path::Path;

use contracts::schema::DOCUMENTS;
use contracts::subjects;
use serde_json::Value;

fn document() -> (Value, &'static Path) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("docs");
    let text =
        std::fs::read_to_string(docs.join("asyncapi.yaml")).expect("docs/asyncapi.yaml exists");
    let value: Value = serde_norway::from_str(&text).expect("docs/asyncapi.yaml is YAML");
    (value, Box::leak(docs.into_boxed_path()))
}

/// Every `$ref` string anywhere in the document.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn asyncapi_is_version_3_and_has_a_channel_per_subject() {
    let (doc, _) = document();
    assert!(
        doc["asyncapi"].as_str().unwrap().starts_with("3."),
        "AsyncAPI 3 expected"
    );
    let addresses: BTreeSet<&str> = doc["channels"]
        .as_object()
        .expect("channels")
        .values()
        .filter_map(|c| c["address"].as_str())
        .collect();
    for subject in subjects::ALL {
        assert!(addresses.contains(subject), "no channel for {subject}");
    }
    assert!(
        addresses
            .iter()
            .any(|a| a.starts_with(subjects::DEAD_LETTER_PREFIX)),
        "no dead-letter channel"
    );
}

#[test]
fn asyncapi_references_every_schema_file_and_every_reference_resolves() {
    let (doc, docs_dir) = document();
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    let mut files = BTreeSet::new();
    for reference in &refs {
        if let Some(pointer) = reference.strip_prefix('#') {
            assert!(
                doc.pointer(pointer).is_some(),
                "dangling reference {reference}"
            );
        } else {
            let path = docs_dir.join(reference);
            assert!(path.is_file(), "{reference} does not exist");
            files.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for schema in &DOCUMENTS {
        assert!(
            files.contains(schema.file_name),
            "asyncapi.yaml does not reference {}",
            schema.file_name
        );
    }
    assert_eq!(
        files.len(),
        DOCUMENTS.len(),
        "asyncapi.yaml references unknown schema files: {files:?}"
    );
}
