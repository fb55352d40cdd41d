//! A router that remembers its routes.
//!
//! axum cannot list the routes of a [`Router`], yet the OpenAPI document
//! must name every one of them. Each resource module registers its
//! handlers through [`Routes`], which both builds the router and keeps a
//! table of `(method, path)`; a test compares that table with the
//! document, so a route added without `#[utoipa::path]` fails the build's
//! tests instead of going undocumented.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing;

use super::AppState;

/// A [`Router`] plus the table of what it routes.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

macro_rules! method {
    ($name:ident, $method:ident) => {
        #[doc = concat!("Routes `", stringify!($method), " path` to `handler`.")]
        pub fn $name<H, T>(mut self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            // `route` on a path already routed merges the method routers.
            self.router = self.router.route(path, routing::$name(handler));
            self.table.push((Method::$method, path));
            self
        }
    };
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    method!(get, GET);
    method!(post, POST);
    method!(put, PUT);
    method!(patch, PATCH);
    method!(delete, DELETE);

    /// Both tables and routers together.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// Every `(method, path)` routed, in registration order.
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
