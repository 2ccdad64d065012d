//! A reverse proxy on 127.0.0.1 that adds an API key to every request: what
//! an operator's proxy in front of the dashboard does, and what lets a
//! browser (which cannot be told to send a header) load key-protected pages.
//!
//! Each request gets `X-Api-Key` and `Connection: close`, so every request
//! comes on a connection of its own and gets the header too.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// The proxy; it stops when dropped.
pub struct KeyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl KeyProxy {
    /// Forwards to 127.0.0.1:`target`, adding `key`.
    pub fn start(target: u16, key: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (stopping, key) = (stop.clone(), key.to_owned());
        thread::spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let key = key.clone();
                        thread::spawn(move || {
                            let _ = forward(client, target, &key);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self { port, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for KeyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn forward(mut client: TcpStream, target: u16, key: &str) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    let head_end = loop {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request = format!(
        "{}\r\nX-Api-Key: {key}\r\nConnection: close\r\n",
        lines.next().unwrap_or_default()
    );
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "connection" && name != "x-api-key" && name != "keep-alive" {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str("\r\n");
    let mut upstream = TcpStream::connect(("127.0.0.1", target))?;
    upstream.write_all(request.as_bytes())?;
    upstream.write_all(&buffer[head_end + 4..])?;
    let mut to_upstream = client.try_clone()?;
    let mut from_client = upstream.try_clone()?;
    thread::spawn(move || {
        let _ = io::copy(&mut to_upstream, &mut from_client);
        let _ = from_client.shutdown(Shutdown::Write);
    });
    io::copy(&mut upstream, &mut client)?;
    client.shutdown(Shutdown::Both)
}
