//! Thin binary: telemetry, configuration, then the application.

use shortener::{Application, Settings};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // `shortener openapi` prints the OpenAPI document (for client generators
    // and validators) without starting anything.
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", shortener::routes::openapi_json());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::from_env()?;
    let application = Application::build(&settings).await?;
    tracing::info!(port = application.port(), public_url = %settings.public_url, "shortener listening");
    application.run_until_stopped().await?;
    tracing::info!("shortener stopped");
    Ok(())
}
