//! The Rust types and the JSON Schemas cannot drift apart: the schema that
//! `schemars` derives from each type must have the same properties, the same
//! required set, the same JSON types (including `null`) and the same
//! `uuid`/`date-time` formats as the hand-written file, at every level.

use std::collections::{BTreeMap, BTreeSet};

use contracts::schema::{self, DOCUMENTS};
use contracts::{Envelope, Event, UrlClicked, UrlCreated, UrlCreatedV1, UrlDeleted, UrlUpdated};
use serde_json::Value;

/// What must agree between a type and its schema.
#[derive(Debug, PartialEq)]
struct Shape {
    types: BTreeSet<String>,
    format: Option<String>,
    object: Option<ObjectShape>,
}

#[derive(Debug, PartialEq)]
struct ObjectShape {
    properties: BTreeMap<String, Shape>,
    required: BTreeSet<String>,
}

/// Formats that a Rust type implies; others (`uri`, `uint32`) are the
/// schema's or the generator's own business.
const TYPED_FORMATS: [&str; 2] = ["uuid", "date-time"];

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("only local references");
            resolve(root, root.pointer(pointer).expect("reference resolves"))
        }
        None => node,
    }
}

fn shape(root: &Value, node: &Value) -> Shape {
    let node = resolve(root, node);
    let mut types: BTreeSet<String> = match node.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts.iter().map(|t| t.as_str().unwrap().to_owned()).collect(),
        _ => BTreeSet::new(),
    };
    // `Option<T>` may also be rendered as `anyOf: [T, null]`.
    if let Some(Value::Array(alternatives)) = node.get("anyOf") {
        if alternatives
            .iter()
            .any(|a| a.get("type") == Some(&Value::from("null")))
        {
            for alternative in alternatives {
                types.extend(shape(root, alternative).types);
            }
        }
    }
    let format = node
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| TYPED_FORMATS.contains(f))
        .map(str::to_owned);
    let object = node.get("properties").map(|properties| ObjectShape {
        properties: properties
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, property)| (name.clone(), shape(root, property)))
            .collect(),
        required: node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default(),
    });
    Shape {
        types,
        format,
        object,
    }
}

fn file_shape(event_type: &str, version: u32) -> Shape {
    let source = schema::document(event_type, version)
        .expect("schema exists")
        .source;
    let value: Value = serde_json::from_str(source).unwrap();
    shape(&value, &value)
}

fn type_shape<T: Event>() -> Shape {
    let generated = schemars::schema_for!(Envelope<T>);
    let value = generated.as_value().clone();
    shape(&value, &value)
}

/// Lists the differences between two shapes, with the property path of each.
fn differences(path: &str, ours: &Shape, theirs: &Shape, out: &mut Vec<String>) {
    if ours.types != theirs.types {
        out.push(format!(
            "{path}: type {:?} in Rust, {:?} in the schema",
            ours.types, theirs.types
        ));
    }
    if ours.format != theirs.format {
        out.push(format!(
            "{path}: format {:?} in Rust, {:?} in the schema",
            ours.format, theirs.format
        ));
    }
    match (&ours.object, &theirs.object) {
        (Some(a), Some(b)) => {
            if a.required != b.required {
                out.push(format!(
                    "{path}: required {:?} in Rust, {:?} in the schema",
                    a.required, b.required
                ));
            }
            for name in a
                .properties
                .keys()
                .chain(b.properties.keys())
                .collect::<BTreeSet<_>>()
            {
                let at = format!("{path}/{name}");
                match (a.properties.get(name), b.properties.get(name)) {
                    (Some(x), Some(y)) => differences(&at, x, y, out),
                    (Some(_), None) => out.push(format!("{at}: in the Rust type only")),
                    (None, Some(_)) => out.push(format!("{at}: in the schema only")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (None, None) => {}
        _ => out.push(format!("{path}: an object on one side only")),
    }
}

fn assert_no_drift<T: Event>() {
    let mut found = Vec::new();
    differences(
        "",
        &type_shape::<T>(),
        &file_shape(T::EVENT_TYPE, T::VERSION),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "{} v{} drifted:\n{}",
        T::EVENT_TYPE,
        T::VERSION,
        found.join("\n")
    );
}

/// `(event type, version)` of every Rust event type; must cover every schema.
fn rust_types() -> Vec<(&'static str, u32)> {
    vec![
        (UrlCreatedV1::EVENT_TYPE, UrlCreatedV1::VERSION),
        (UrlCreated::EVENT_TYPE, UrlCreated::VERSION),
        (UrlClicked::EVENT_TYPE, UrlClicked::VERSION),
        (UrlUpdated::EVENT_TYPE, UrlUpdated::VERSION),
        (UrlDeleted::EVENT_TYPE, UrlDeleted::VERSION),
    ]
}

#[test]
fn rust_types_match_their_schemas() {
    assert_no_drift::<UrlCreatedV1>();
    assert_no_drift::<UrlCreated>();
    assert_no_drift::<UrlClicked>();
    assert_no_drift::<UrlUpdated>();
    assert_no_drift::<UrlDeleted>();
}

#[test]
fn every_schema_has_a_rust_type_and_the_latest_types_are_the_newest_schemas() {
    let types = rust_types();
    for doc in &DOCUMENTS {
        assert!(
            types.contains(&(doc.event_type, doc.version)),
            "{} has no Rust type checked in drift.rs",
            doc.file_name
        );
    }
    assert_eq!(types.len(), DOCUMENTS.len());
    for (event_type, latest) in [
        (UrlCreated::EVENT_TYPE, UrlCreated::VERSION),
        (UrlClicked::EVENT_TYPE, UrlClicked::VERSION),
        (UrlUpdated::EVENT_TYPE, UrlUpdated::VERSION),
        (UrlDeleted::EVENT_TYPE, UrlDeleted::VERSION),
    ] {
        assert_eq!(
            schema::latest_version(event_type),
            Some(latest),
            "{event_type}"
        );
    }
}

/// The check above must be able to fail: a field added to the schema only, a
/// field made optional, a nullable made non-nullable are all caught.
#[test]
fn the_drift_check_notices_a_change_on_either_side() {
    let source = schema::document(UrlDeleted::EVENT_TYPE, 1).unwrap().source;
    let original: Value = serde_json::from_str(source).unwrap();
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: [Mutation; 4] = [
        ("added property", |s| {
            s["properties"]["data"]["properties"]["reason"] = serde_json::json!({"type": "string"});
        }),
        ("dropped required", |s| {
            s["properties"]["data"]["required"] = serde_json::json!(["url_id", "short_code"]);
        }),
        ("made nullable", |s| {
            s["properties"]["data"]["properties"]["deleted_at"]["type"] =
                serde_json::json!(["string", "null"]);
        }),
        ("changed format", |s| {
            s["properties"]["event_id"]["format"] = serde_json::json!("date-time");
        }),
    ];
    for (name, mutate) in mutations {
        let mut mutated = original.clone();
        mutate(&mut mutated);
        let mut found = Vec::new();
        differences(
            "",
            &type_shape::<UrlDeleted>(),
            &shape(&mutated, &mutated),
            &mut found,
        );
        assert!(!found.is_empty(), "drift check missed: {name}");
    }
}
