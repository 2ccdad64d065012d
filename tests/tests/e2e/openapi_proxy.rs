//! A proxy on 127.0.0.1 in front of one service that checks every answer
//! of its API against the service's own OpenAPI document: the console's
//! contract tests as a consumer. The console is pointed at the proxy, so
//! each response it receives from `/api/...` is checked: its status is one
//! the operation declares, its content type one declared for that status,
//! and a JSON body matches the declared schema (`$ref`s into the
//! document's components resolved).
//!
//! Probes (`/health`, `/ready`, `/metrics`) pass through unchecked: they
//! are not in the documents. Each exchange uses a connection of its own.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

/// What the proxy saw: every checked exchange, and what broke the document.
#[derive(Debug, Default)]
pub struct Findings {
    /// `METHOD path -> status` of every checked answer.
    pub checked: Vec<String>,
    pub violations: Vec<String>,
}

pub struct OpenApiProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    findings: Arc<Mutex<Findings>>,
}

impl OpenApiProxy {
    /// Forwards to 127.0.0.1:`target`, checking against `document`.
    pub fn start(target: u16, document: Value) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let findings = Arc::new(Mutex::new(Findings::default()));
        let document = Arc::new(document);
        let (stopping, found) = (stop.clone(), findings.clone());
        thread::spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (document, found) = (document.clone(), found.clone());
                        thread::spawn(move || {
                            if let Err(e) = exchange(client, target, &document, &found) {
                                found
                                    .lock()
                                    .unwrap()
                                    .violations
                                    .push(format!("proxy failure: {e}"));
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            port,
            stop,
            findings,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn findings(&self) -> std::sync::MutexGuard<'_, Findings> {
        self.findings.lock().unwrap()
    }
}

impl Drop for OpenApiProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// An HTTP message read whole: its head lines and its body.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The head with `Connection: close` and the body's real length.
    fn head_for_forwarding(&self) -> String {
        let mut out = format!("{}\r\n", self.head[0]);
        for line in &self.head[1..] {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "connection" | "keep-alive" | "content-length" | "transfer-encoding"
            ) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        out
    }
}

fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut chunk = [0; 8192];
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(at));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a request (its body by Content-Length).
fn read_request(stream: &mut TcpStream) -> io::Result<Option<Message>> {
    let mut buffer = Vec::new();
    let Some(end) = read_head(stream, &mut buffer)? else {
        return Ok(None);
    };
    let head: Vec<String> = String::from_utf8_lossy(&buffer[..end])
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    let mut message = Message {
        head,
        body: buffer[end + 4..].to_vec(),
    };
    let length: usize = message
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while message.body.len() < length {
        let mut chunk = vec![0; length - message.body.len()];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        message.body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(message))
}

/// Reads a response to the end of the connection, chunks decoded.
fn read_response(stream: &mut TcpStream) -> io::Result<Message> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("a response without a head"))?;
    let head: Vec<String> = String::from_utf8_lossy(&all[..end])
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    let mut message = Message {
        head,
        body: all[end + 4..].to_vec(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        message.body = dechunk(&message.body)?;
    }
    Ok(message)
}

pub fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| io::Error::other("a bad chunk"))?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::other("a bad chunk size"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&raw[..size.min(raw.len())]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
}

fn exchange(
    mut client: TcpStream,
    target: u16,
    document: &Value,
    findings: &Mutex<Findings>,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some(request) = read_request(&mut client)? else {
        return Ok(());
    };
    let mut upstream = TcpStream::connect(("127.0.0.1", target))?;
    upstream.set_read_timeout(Some(Duration::from_secs(30)))?;
    upstream.write_all(request.head_for_forwarding().as_bytes())?;
    upstream.write_all(&request.body)?;
    let response = read_response(&mut upstream)?;
    let mut parts = request.head[0].split_whitespace();
    let (method, target_path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let path = target_path.split('?').next().unwrap_or_default();
    if path.starts_with("/api/") {
        let status: u16 = response.head[0]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let verdict = check(document, &method, path, status, &response);
        let mut found = findings.lock().unwrap();
        found.checked.push(format!("{method} {path} -> {status}"));
        if let Err(violation) = verdict {
            found
                .violations
                .push(format!("{method} {target_path} -> {status}: {violation}"));
        }
    }
    client.write_all(response.head_for_forwarding().as_bytes())?;
    client.write_all(&response.body)?;
    client.shutdown(Shutdown::Both)
}

/// The document's path template that `path` is an instance of.
fn operation_path<'a>(document: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&str, usize)> = None;
    for template in document["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let matches = parts
            .iter()
            .zip(&segments)
            .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s);
        // The template with the most literal segments wins.
        let literal = parts.iter().filter(|t| !t.starts_with('{')).count();
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((template, literal));
        }
    }
    best.map(|(t, _)| t)
}

fn check(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    response: &Message,
) -> Result<(), String> {
    let template = operation_path(document, path).ok_or("the document has no such path")?;
    let operation = &document["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return Err(format!("the document has no {method} on {template}"));
    }
    let declared = &operation["responses"][status.to_string()];
    let declared = if declared.is_null() {
        &operation["responses"]["default"]
    } else {
        declared
    };
    if declared.is_null() {
        return Err(format!(
            "status {status} is not declared for {method} {template}"
        ));
    }
    let Some(content) = declared["content"].as_object() else {
        return if response.body.is_empty() {
            Ok(())
        } else {
            Err("a body where the document declares none".into())
        };
    };
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let media = content.get(&content_type).ok_or_else(|| {
        format!(
            "content type {content_type:?} is not declared (only {:?})",
            content.keys().collect::<Vec<_>>()
        )
    })?;
    let Some(schema) = media.get("schema") else {
        return Ok(());
    };
    let body: Value =
        serde_json::from_slice(&response.body).map_err(|e| format!("the body is not JSON: {e}"))?;
    // The schema under a root that carries the document's components, so
    // `#/components/schemas/...` resolves.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("the declared schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("the body breaks the schema: {}", errors.join("; ")))
    }
}

#[test]
fn paths_match_the_most_literal_template() {
    let document = json!({ "paths": {
        "/api/v1/links": {}, "/api/v1/links/{code}": {}, "/api/v1/links/{code}/qr": {},
        "/{code}": {}, "/api/v1/keys/{name}": {},
    }});
    assert_eq!(
        operation_path(&document, "/api/v1/links"),
        Some("/api/v1/links")
    );
    assert_eq!(
        operation_path(&document, "/api/v1/links/abc"),
        Some("/api/v1/links/{code}")
    );
    assert_eq!(
        operation_path(&document, "/api/v1/links/abc/qr"),
        Some("/api/v1/links/{code}/qr")
    );
    assert_eq!(operation_path(&document, "/api/v1/nothing/x/y"), None);
    assert_eq!(
        dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
        b"abcde"
    );
}
