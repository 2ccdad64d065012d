//! Sessions: the signed-in key stays on the server.
//!
//! The browser holds only a random session id in an HttpOnly,
//! SameSite=Strict cookie (Secure when the console is reached over https).
//! The key it stands for lives in this process's memory and is sent to the
//! shortener on the user's behalf; it never reaches a page or a log.
//!
//! Every form carries a CSRF token: the session id hashed with a key
//! derived from the session secret. SameSite=Strict already keeps other
//! sites' forms from carrying the cookie; the token also covers browsers
//! that do not honour it. The login form, made before any session, uses a
//! double-submit token: the same random value in a cookie and in the form.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use moka::sync::Cache;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "console_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "console_login";
/// Most sessions held at once; the least recently used go first.
const MAX_SESSIONS: u64 = 100_000;

/// What a key may do at the shortener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Author,
}

/// One signed-in user.
pub struct SessionData {
    /// The shortener key, sent on the user's behalf.
    pub key: String,
    pub role: Role,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// A session found from the request's cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub data: Arc<SessionData>,
    /// The token this session's forms carry.
    pub csrf: String,
}

/// The sessions of this process.
pub struct Sessions {
    cache: Cache<String, Arc<SessionData>>,
    csrf_key: [u8; 32],
}

/// A fresh random token: 32 bytes, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Equal in constant time.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the browser reached the console over https (directly, or
/// through a proxy that says so). Only decides the cookies' Secure flag:
/// a lie can only make a cookie stricter or the session unusable.
pub fn over_https(request: &HttpRequest) -> bool {
    request.connection_info().scheme() == "https"
}

/// A cookie with the console's flags.
pub fn cookie(request: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_https(request))
        .finish()
}

/// A cookie that removes `name`.
pub fn removal(request: &HttpRequest, name: &'static str) -> Cookie<'static> {
    let mut gone = cookie(request, name, String::new());
    gone.make_removal();
    gone
}

impl Sessions {
    pub fn new(secret: &[u8], idle: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(idle)
                .build(),
            csrf_key: blake3::derive_key("url-shortener console 2026 csrf tokens", secret),
        }
    }

    fn csrf_of(&self, id: &str) -> String {
        blake3::keyed_hash(&self.csrf_key, id.as_bytes())
            .to_hex()
            .to_string()
    }

    /// Starts a session (a fresh id at every login, so an id planted
    /// before it is worth nothing).
    pub fn start(&self, data: SessionData) -> Session {
        let id = random_token();
        let data = Arc::new(data);
        self.cache.insert(id.clone(), data.clone());
        Session {
            csrf: self.csrf_of(&id),
            id,
            data,
        }
    }

    /// The request's session, if its cookie names a live one.
    pub fn find(&self, request: &HttpRequest) -> Option<Session> {
        let id = request.cookie(SESSION_COOKIE)?.value().to_owned();
        let data = self.cache.get(&id)?;
        Some(Session {
            csrf: self.csrf_of(&id),
            id,
            data,
        })
    }

    pub fn end(&self, session: &Session) {
        self.cache.invalidate(&session.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_per_secret() {
        let a = Sessions::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let b = Sessions::new(b"another secret, long enough: 32+", Duration::from_secs(60));
        assert_eq!(a.csrf_of("s1"), a.csrf_of("s1"));
        assert_ne!(a.csrf_of("s1"), a.csrf_of("s2"));
        assert_ne!(a.csrf_of("s1"), b.csrf_of("s1"));
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "abcd"));
    }
}
