//! Thin binary: telemetry, configuration, then the application.
//!
//! `analytics` serves; `analytics replay [--allow-shorter-history]` rebuilds
//! the store from the stream beside the live one, verifies it and swaps it
//! in (also while the service runs); `analytics openapi` prints the
//! OpenAPI document; `analytics api-key create|list|revoke` manages keys
//! against the configured store, also while the service runs.

use analytics::{Application, Settings};
use service_kit::telemetry;

/// mimalloc rather than glibc's allocator, as in the shortener: decoding a
/// batch builds and frees a JSON tree per event across threads, and glibc's
/// malloc, free and consolidation took about 15% of analytics' CPU during
/// ingest in the profile. (The ingest rate, bound by the broker's share of
/// two cores here, moved within run-to-run noise.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    if command.as_deref() == Some("openapi") {
        println!("{}", analytics::routes::openapi_json());
        return Ok(());
    }
    if command.as_deref() == Some("api-key") {
        // No logs on stdout: it carries only the new key.
        let args: Vec<String> = std::env::args().skip(2).collect();
        return api_key(&args).await;
    }
    let _telemetry = telemetry::init(&telemetry::TelemetrySettings::from_env("analytics")?)?;
    let settings = Settings::from_env()?;
    match command.as_deref() {
        None | Some("serve") => {
            let application = Application::build(&settings).await?;
            tracing::info!(port = application.port(), "analytics listening");
            application.run_until_stopped().await?;
            tracing::info!("analytics stopped");
        }
        Some("replay") => {
            let args = std::env::args().skip(2);
            let mut options = analytics::replay::ReplayOptions::default();
            for arg in args {
                match arg.as_str() {
                    "--allow-shorter-history" => options.allow_shorter_history = true,
                    other => anyhow::bail!(
                        "unknown replay option {other:?}; the only one is --allow-shorter-history"
                    ),
                }
            }
            let report = analytics::replay::replay(&settings, options).await?;
            for lost in &report.shortfall {
                println!("accepted (--allow-shorter-history): {lost}");
            }
            println!(
                "replay done: {} clicks stored in {:.1} s; the store as it was is kept in {} until you remove it",
                report.clicks,
                report.elapsed.as_secs_f64(),
                report.kept
            );
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve, replay or openapi"),
    }
    Ok(())
}

const KEY_USAGE: &str = "usage:
  analytics api-key create --name NAME   prints the new key, and nothing else
  analytics api-key list                 name, created, last used, revoked
  analytics api-key revoke NAME";

/// `analytics api-key ...` against the configured store.
async fn api_key(args: &[String]) -> anyhow::Result<()> {
    use analytics::keys::{create_key, revoke_key};
    let settings = Settings::from_env()?;
    let store = analytics::startup::open_store(&settings.store).await?;
    let time = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or("-".to_owned(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            })
    };
    match args.first().map(String::as_str) {
        Some("create") => {
            let name = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("--name"), Some(name)) if args.len() == 3 => name,
                _ => anyhow::bail!("{KEY_USAGE}"),
            };
            let (_, key) = create_key(store.as_ref(), name).await?;
            println!("{key}");
        }
        Some("list") => {
            println!(
                "{:<24} {:<20} {:<20} revoked",
                "name", "created", "last used"
            );
            for key in store.list_keys().await? {
                println!(
                    "{:<24} {:<20} {:<20} {}",
                    key.name,
                    time(Some(key.created_at)),
                    time(key.last_used_at),
                    time(key.revoked_at)
                );
            }
        }
        Some("revoke") if args.len() == 2 => {
            revoke_key(store.as_ref(), &args[1]).await?;
            eprintln!("revoked {:?}; it stops working within 5 s", args[1]);
        }
        _ => anyhow::bail!("{KEY_USAGE}"),
    }
    Ok(())
}
