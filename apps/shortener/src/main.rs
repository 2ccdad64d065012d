//! Thin binary: telemetry, configuration, then the application.

use service_kit::telemetry;
use shortener::{Application, Settings};

/// mimalloc rather than glibc's allocator: a click is built on an HTTP
/// worker and freed on the publishing thread, a cross-thread pattern glibc
/// pays for in arena locking and consolidation (about 8% of the CPU under
/// load in the profile; see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // `shortener openapi` prints the OpenAPI document (for client generators
    // and validators) without starting anything.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("openapi") => {
            println!("{}", shortener::routes::openapi_json());
            return Ok(());
        }
        // Keys are managed without starting the service (and without logs
        // on stdout, which carries only the new key).
        Some("api-key") => return shortener::cli::api_key(&args[1..]).await,
        _ => {}
    }
    let _telemetry = telemetry::init(&telemetry::TelemetrySettings::from_env("shortener")?)?;
    let settings = Settings::from_env()?;
    let application = Application::build(&settings).await?;
    tracing::info!(port = application.port(), public_url = %settings.public_url, "shortener listening");
    application.run_until_stopped().await?;
    tracing::info!("shortener stopped");
    Ok(())
}
