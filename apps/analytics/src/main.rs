//! Thin binary: telemetry, configuration, then the application.
//!
//! `analytics` serves; `analytics replay` rebuilds the store from the stream
//! (run it while the service is stopped); `analytics openapi` prints the
//! OpenAPI document.

use analytics::{Application, Settings};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    if command.as_deref() == Some("openapi") {
        println!("{}", analytics::api::openapi_json());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::from_env()?;
    match command.as_deref() {
        None | Some("serve") => {
            let application = Application::build(&settings).await?;
            tracing::info!(port = application.port(), "analytics listening");
            application.run_until_stopped().await?;
            tracing::info!("analytics stopped");
        }
        Some("replay") => {
            let report = analytics::replay::replay(&settings).await?;
            println!(
                "replay done: {} clicks stored in {:.1} s",
                report.clicks,
                report.elapsed.as_secs_f64()
            );
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve, replay or openapi"),
    }
    Ok(())
}
