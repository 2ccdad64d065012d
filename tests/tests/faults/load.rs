//! The load generator: link creations plus redirects over HTTP against the
//! shortener, counting exactly what it saw served. A redirect counts only
//! when its 302 arrived; a creation only when its 201 arrived.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

/// A link the shortener answered 201 for.
#[derive(Debug, Clone)]
pub struct Created {
    pub code: String,
}

/// One redirect as the load generator saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was sent.
    pub at: SystemTime,
    pub latency: Duration,
    /// Answered with the redirect.
    pub ok: bool,
}

#[derive(Debug, Default)]
pub struct Seen {
    pub created: Vec<Created>,
    /// Served redirects per code.
    pub served: HashMap<String, u64>,
    pub failed_requests: u64,
    pub failed_redirects: u64,
    /// Why redirects failed: `status 503`, `timeout`, `connect`, ...
    pub failure_reasons: BTreeMap<String, u64>,
    /// Every redirect sent, in no particular order.
    pub samples: Vec<Sample>,
}

impl Seen {
    pub fn total_served(&self) -> u64 {
        self.served.values().sum()
    }

    /// Redirect latency percentile (0-100) of those sent in `[from, to)`, in ms.
    pub fn percentile_ms(&self, p: f64, from: SystemTime, to: SystemTime) -> f64 {
        let mut window: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .map(|s| s.latency)
            .collect();
        if window.is_empty() {
            return f64::NAN;
        }
        window.sort();
        let index = ((p / 100.0) * (window.len() - 1) as f64).round() as usize;
        window[index].as_secs_f64() * 1000.0
    }

    /// Redirects served that were sent at `from` or later.
    pub fn served_since(&self, from: SystemTime) -> u64 {
        self.samples.iter().filter(|s| s.ok && s.at >= from).count() as u64
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    task: std::thread::JoinHandle<Seen>,
}

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub creations_per_s: u32,
    pub redirects_per_s: u32,
    pub workers: u32,
}

fn client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().expect("a key is a header value"));
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        // Below the server's 5 s keep-alive: a connection idle that long may
        // be closed by the server just as a request goes out on it, a race
        // of the connection, not of the service (browsers retry it).
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

/// Creates a link on the first instance that takes the connection.
async fn create(client: &reqwest::Client, bases: &[String], n: u64) -> Option<Created> {
    let body = serde_json::json!({ "url": format!("https://example.com/load/{n}") });
    let mut answer = None;
    for base in bases {
        match client
            .post(format!("{base}/api/v1/links"))
            .json(&body)
            .send()
            .await
        {
            Err(e) if e.is_connect() => continue,
            other => {
                answer = Some(other);
                break;
            }
        }
    }
    let response = answer?.ok()?;
    if response.status().as_u16() != 201 {
        return None;
    }
    let link: serde_json::Value = response.json().await.ok()?;
    Some(Created {
        code: link["code"].as_str()?.to_owned(),
    })
}

impl Load {
    /// Starts the load against `base` (e.g. `http://127.0.0.1:PORT`) in a
    /// thread of its own; [`Load::finish`] stops it and says what was seen.
    pub fn start(base: String, key: &str, rate: Rate) -> Self {
        Self::start_on(vec![base], key, rate)
    }

    /// The load spread over several instances of the shortener, in turn, as
    /// a load balancer would: a request whose connection is refused (nothing
    /// was served) goes to the next instance. A timeout is not retried: the
    /// redirect may have been served.
    pub fn start_on(bases: Vec<String>, key: &str, rate: Rate) -> Self {
        let key = key.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_ = stop.clone();
        let task = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(run(bases, key, rate, stop_))
        });
        Self { stop, task }
    }

    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Release);
        self.task.join().expect("the load thread")
    }
}

/// A GET on `path` from the instances in turn from `first`, moving on while
/// a connection is refused.
async fn get_balanced(
    client: &reqwest::Client,
    bases: &[String],
    first: usize,
    path: &str,
) -> reqwest::Result<reqwest::Response> {
    let mut answer = client
        .get(format!("{}{path}", bases[first % bases.len()]))
        .send()
        .await;
    for next in 1..bases.len() {
        match &answer {
            Err(e) if e.is_connect() => {}
            _ => break,
        }
        let base = &bases[(first + next) % bases.len()];
        answer = client.get(format!("{base}{path}")).send().await;
    }
    answer
}

async fn run(bases: Vec<String>, key: String, rate: Rate, stop: Arc<AtomicBool>) -> Seen {
    let client = client(&key);
    let links: Arc<RwLock<Vec<String>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let mut created = Vec::new();
    // A few links first, so redirects have something to follow.
    for n in 0..5 {
        for _ in 0..50 {
            if let Some(link) = create(&client, &bases, n).await {
                links.write().unwrap().push(link.code.clone());
                created.push(link);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut workers = JoinSet::new();
    for w in 0..rate.workers {
        let (client, bases, links, stop, failed) = (
            client.clone(),
            bases.clone(),
            links.clone(),
            stop.clone(),
            failed.clone(),
        );
        let period = Duration::from_secs_f64(
            f64::from(rate.workers) / f64::from(rate.redirects_per_s.max(1)),
        );
        workers.spawn(async move {
            let mut counts: HashMap<String, u64> = HashMap::new();
            let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = u64::from(w);
            while !stop.load(Ordering::Acquire) {
                tick.tick().await;
                let code = {
                    let links = links.read().unwrap();
                    links[(i as usize * 7919) % links.len()].clone()
                };
                i += 1;
                let (at, started) = (SystemTime::now(), Instant::now());
                let path = format!("/{code}");
                let ok = match get_balanced(&client, &bases, i as usize, &path).await {
                    Ok(r) if r.status().as_u16() == 302 => {
                        *counts.entry(code).or_default() += 1;
                        true
                    }
                    answer => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let reason = match answer {
                            Ok(r) => format!("status {}", r.status().as_u16()),
                            Err(e) if e.is_timeout() => "timeout".to_owned(),
                            Err(e) if e.is_connect() => "connect".to_owned(),
                            Err(e) => format!("error {e}"),
                        };
                        *reasons.entry(reason).or_default() += 1;
                        false
                    }
                };
                samples.push(Sample {
                    at,
                    latency: started.elapsed(),
                    ok,
                });
            }
            (counts, samples, reasons)
        });
    }
    let mut n = 5;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(rate.creations_per_s.max(1)),
    ));
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        if rate.creations_per_s == 0 {
            continue;
        }
        n += 1;
        match create(&client, &bases, n).await {
            Some(link) => {
                links.write().unwrap().push(link.code.clone());
                created.push(link);
            }
            None => {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut seen = Seen {
        created,
        ..Seen::default()
    };
    while let Some(done) = workers.join_next().await {
        let (counts, samples, reasons) = done.expect("a load worker");
        for (code, n) in counts {
            *seen.served.entry(code).or_default() += n;
        }
        for (reason, n) in reasons {
            *seen.failure_reasons.entry(reason).or_default() += n;
        }
        seen.samples.extend(samples);
    }
    seen.failed_requests = failed.load(Ordering::Relaxed);
    seen.failed_redirects = seen.samples.iter().filter(|s| !s.ok).count() as u64;
    seen
}
