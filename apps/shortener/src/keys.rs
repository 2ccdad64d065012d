//! API keys: who may call the API, and what each caller may see.
//!
//! A key is 32 random bytes shown once, as 64 hex digits, when it is made.
//! The service keeps only its SHA-256 digest, so a stolen database holds no
//! usable key; a presented key is hashed and looked up by digest. Keys have
//! a role, as Shlink's do: an `admin` sees and changes every link and
//! manages keys; an `author` sees and changes only the links it created.
//! Keys never appear in logs, errors, metrics or events.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Author,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Author => "author",
        }
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Role::Admin),
            "author" => Ok(Role::Author),
            other => Err(format!("{other:?} is not a role (admin, author)")),
        }
    }
}

pub use service_kit::auth::KeyDigest;

/// A key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: Uuid,
    /// Unique; how people tell keys apart (`api-key revoke NAME`).
    pub name: String,
    pub role: Role,
    pub digest: KeyDigest,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key: its record, and the key itself, to be shown once.
pub struct NewKey {
    pub record: KeyRecord,
    pub key: String,
}

impl NewKey {
    pub fn generate(name: &str, role: Role, at: DateTime<Utc>) -> Self {
        let key = service_kit::auth::generate_key();
        Self {
            record: KeyRecord {
                id: Uuid::now_v7(),
                name: name.to_owned(),
                role,
                digest: KeyDigest::of(&key),
                created_at: at,
                last_used_at: None,
                revoked_at: None,
            },
            key,
        }
    }
}

pub use service_kit::auth::valid_key_name as valid_name;

/// Who is calling, once their key was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The key's id: an author's links carry it as their owner.
    pub key_id: Uuid,
    pub role: Role,
}

impl From<service_kit::auth::Caller<Role>> for Caller {
    fn from(caller: service_kit::auth::Caller<Role>) -> Self {
        Self {
            key_id: caller.key_id,
            role: caller.grants,
        }
    }
}

impl Caller {
    /// The links this caller may see and change.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::Author => Scope::OwnedBy(self.key_id),
        }
    }
}

/// Which links a use case may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    OwnedBy(Uuid),
}

impl Scope {
    pub fn allows(&self, owner: Option<Uuid>) -> bool {
        match self {
            Scope::All => true,
            Scope::OwnedBy(key) => owner == Some(*key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits_and_only_their_digest_is_kept() {
        let new = NewKey::generate("ci", Role::Author, Utc::now());
        assert_eq!(new.key.len(), 64);
        assert!(new.key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(new.record.digest.matches(&KeyDigest::of(&new.key)));
        assert!(!new.record.digest.matches(&KeyDigest::of("other")));
        assert!(!format!("{:?}", new.record).contains(&new.key));
        let hex = new.record.digest.to_hex();
        assert_eq!(KeyDigest::from_hex(&hex), Some(new.record.digest));
    }

    #[test]
    fn authors_see_only_their_own_links() {
        let me = Uuid::now_v7();
        let author = Caller {
            key_id: me,
            role: Role::Author,
        };
        assert!(author.scope().allows(Some(me)));
        assert!(!author.scope().allows(Some(Uuid::now_v7())));
        assert!(!author.scope().allows(None));
        let admin = Caller {
            key_id: me,
            role: Role::Admin,
        };
        assert!(admin.scope().allows(None));
    }
}
