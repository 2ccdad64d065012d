//! `shortener api-key …`: manage API keys against the configured store,
//! also while the service runs (a new key works, and a revoked key stops
//! working, within five seconds).

use anyhow::{Context, anyhow, bail};

use crate::auth::{create_key, revoke_key};
use crate::configuration::Settings;
use crate::keys::Role;
use crate::startup::open_store;

const USAGE: &str = "usage:
  shortener api-key create --name NAME --role admin|author   prints the new key, and nothing else
  shortener api-key list                                     name, role, created, last used
  shortener api-key revoke NAME";

/// Runs `shortener api-key ARGS`.
pub async fn api_key(args: &[String]) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let store = open_store(&settings.store).await?;
    match args.first().map(String::as_str) {
        Some("create") => {
            let (mut name, mut role) = (None, None);
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let value = rest
                    .next()
                    .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                match flag.as_str() {
                    "--name" => name = Some(value.clone()),
                    "--role" => role = Some(value.parse::<Role>().map_err(|e| anyhow!(e))?),
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            let name = name.ok_or_else(|| anyhow!("--name is required\n{USAGE}"))?;
            let role = role.ok_or_else(|| anyhow!("--role is required\n{USAGE}"))?;
            let new = create_key(store.as_ref(), &name, role).await?;
            println!("{}", new.key);
        }
        Some("list") => {
            let keys = store.list_keys().await.context("failed to list the keys")?;
            println!(
                "{:<24} {:<7} {:<20} {:<20} revoked",
                "name", "role", "created", "last used"
            );
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                })
            };
            for key in keys {
                println!(
                    "{:<24} {:<7} {:<20} {:<20} {}",
                    key.name,
                    key.role.as_str(),
                    time(Some(key.created_at)),
                    time(key.last_used_at),
                    time(key.revoked_at)
                );
            }
        }
        Some("revoke") => {
            let name = args
                .get(1)
                .ok_or_else(|| anyhow!("revoke needs a NAME\n{USAGE}"))?;
            revoke_key(store.as_ref(), name).await?;
            eprintln!("revoked {name:?}; it stops working within 5 s");
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}
