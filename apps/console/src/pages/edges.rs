//! What a page handler is handed instead of a raw request: who is signed
//! in ([`SignedIn`], [`Admin`]) and a form posted from one of their pages,
//! its CSRF token checked ([`CsrfForm`]).

use std::collections::HashMap;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{PageError, State, client_ip};
use crate::session::{Role, Session, tokens_match};

/// A signed-in person's request: the session, and the browser's address,
/// which the console forwards to the services. Not signed in (or the
/// session is over): to the login page.
pub struct SignedIn {
    pub session: Session,
    pub client: String,
}

impl SignedIn {
    fn of(request: &HttpRequest) -> Result<Self, PageError> {
        let state = request
            .app_data::<State>()
            .expect("the console's state is registered");
        let session = state.sessions.find(request).ok_or(PageError::SignIn)?;
        Ok(Self {
            session,
            client: client_ip(request).to_string(),
        })
    }

    /// The same request, if an admin signed in (403 for an author).
    fn of_admin(self) -> Result<Self, PageError> {
        match self.session.data.role {
            Role::Admin => Ok(self),
            Role::Author => Err(PageError::Forbidden),
        }
    }
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::of(request))
    }
}

/// A signed-in admin's request (403 for an author).
pub struct Admin(pub SignedIn);

impl FromRequest for Admin {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            SignedIn::of(request)
                .and_then(SignedIn::of_admin)
                .map(Admin),
        )
    }
}

/// A form posted from one of the signed-in person's pages: its `csrf`
/// field matches the session's token, and the other fields read as `T`
/// (by default, every field by name; a repeated name keeps its last value).
pub struct CsrfForm<T = HashMap<String, String>> {
    pub signed_in: SignedIn,
    pub fields: T,
}

impl<T> CsrfForm<T> {
    /// The same form, if an admin sent it (403 for an author).
    pub fn of_admin(self) -> Result<Self, PageError> {
        Ok(Self {
            signed_in: self.signed_in.of_admin()?,
            fields: self.fields,
        })
    }
}

#[derive(Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedIn::of(request);
        // Within the app's FormConfig limit; not a form at all is a 400.
        let form = web::Form::<WithToken<T>>::from_request(request, payload);
        Box::pin(async move {
            let signed_in = signed_in?;
            let form = form.await?.into_inner();
            if !tokens_match(&form.csrf, &signed_in.session.csrf) {
                return Err(PageError::Csrf.into());
            }
            Ok(Self {
                signed_in,
                fields: form.fields,
            })
        })
    }
}
