//! A minimal browser for the web app's HTML-level tests: keeps the session
//! cookie, does not follow redirects (tests look at them), and sends what a
//! browser sends with a form (`Origin`, `Sec-Fetch-Site`).
#![allow(dead_code)]

use crate::support::{Org, TestServer};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

/// The cookie the app uses over plain HTTP (`__Host-lightbox_session` over HTTPS).
pub const SESSION_COOKIE: &str = "lightbox_session";

pub struct Browser {
    http: reqwest::Client,
    pub base: String,
    /// The session cookie's value, as the server last set it.
    pub session: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session `Set-Cookie` line, if the response has one.
    pub fn session_cookie(&self) -> Option<&str> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
    }
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.base.clone(),
            session: None,
        }
    }

    async fn finish(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.session {
            Some(token) => request.header("cookie", format!("{SESSION_COOKIE}={token}")),
            None => request,
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let page = Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        };
        if let Some(cookie) = page.session_cookie() {
            let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
            self.session = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.finish(request).await
    }

    /// A GET as htmx sends it (`HX-Request`): fragments instead of pages.
    pub async fn htmx_get(&mut self, path: &str) -> Page {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("hx-request", "true");
        self.finish(request).await
    }

    /// Submits a form from one of the app's own pages.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_from(path, form, "same-origin", false).await
    }

    pub async fn htmx_post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_from(path, form, "same-origin", true).await
    }

    /// Submits a form as a page on another site would (`Sec-Fetch-Site: cross-site`).
    pub async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        fetch_site: &str,
        htmx: bool,
    ) -> Page {
        let origin = if fetch_site == "same-origin" {
            self.base.clone()
        } else {
            "https://evil.example".to_owned()
        };
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", origin)
            .header("sec-fetch-site", fetch_site)
            .form(form);
        if htmx {
            request = request.header("hx-request", "true");
        }
        self.finish(request).await
    }

    /// Signs in, asserting it worked.
    pub async fn sign_in(&mut self, email: &str, password: &str) {
        let page = self
            .post("/ui/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(self.session.is_some(), "no session cookie");
    }
}

pub const PASSWORD: &str = "plum kettle orbit 1994 sandal";

/// Invites a user through the Viewer API and accepts the invitation with
/// [`PASSWORD`]; returns the user's id.
pub async fn invited_user(
    server: &TestServer,
    org: &Org,
    email: &str,
    first_name: &str,
    can_manage_studies: bool,
) -> String {
    let r = server
        .api(&org.api_key)
        .post(
            "/v1/viewer/users",
            json!({
                "email": email, "firstName": first_name, "lastName": "Reader",
                "clinicRole": "Radiologist", "level": "member",
                "canManageStudies": can_manage_studies, "hasDashboardAccess": true,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let user_id = r.body["userId"].as_str().unwrap().to_owned();
    let link = invitation_link(server, org, email);
    let mut browser = Browser::new(server);
    let page = browser
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    user_id
}

/// `lightbox admin invitation-link`: the path of the user's invitation link.
pub fn invitation_link(server: &TestServer, org: &Org, email: &str) -> String {
    let v = server.admin(&["invitation-link", "--org", &org.org_id, "--email", email]);
    v["link"].as_str().unwrap().to_owned()
}

/// `lightbox admin reset-password`: the path of a one-time reset link.
pub fn reset_link(server: &TestServer, org: &Org, email: &str) -> String {
    let v = server.admin(&["reset-password", "--org", &org.org_id, "--email", email]);
    v["link"].as_str().unwrap().to_owned()
}

/// A signed-in browser for a new user of `org`.
pub async fn signed_in(
    server: &TestServer,
    org: &Org,
    label: &str,
    can_manage_studies: bool,
) -> (Browser, String) {
    let email = format!("{label}-{}@example.org", uuid::Uuid::new_v4().simple());
    let user_id = invited_user(server, org, &email, label, can_manage_studies).await;
    let mut browser = Browser::new(server);
    browser.sign_in(&email, PASSWORD).await;
    (browser, user_id)
}
