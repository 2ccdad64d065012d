//! Thin binary: telemetry, configuration, then the console.

use console::{Application, Settings};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::from_env()?;
    let application = Application::build(&settings)?;
    tracing::info!(port = application.port(), "console listening");
    application.run_until_stopped().await?;
    tracing::info!("console stopped");
    Ok(())
}
