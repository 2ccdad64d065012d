//! Thin binary: telemetry, configuration, then the console.

use console::{Application, Settings};
use service_kit::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&telemetry::TelemetrySettings::from_env("console")?)?;
    let settings = Settings::from_env()?;
    let application = Application::build(&settings)?;
    tracing::info!(port = application.port(), "console listening");
    application.run_until_stopped().await?;
    tracing::info!("console stopped");
    Ok(())
}
