//! The web app's accounts over real HTTP, on both backends: invitation links
//! that set a password, sign-in rules, sessions that end (sign-out, idle,
//! deactivation), throttled failures, CSRF refusals, the audit trail.

mod support;
mod web_support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{Backend, TestServer};
use web_support::{invitation_link, reset_link, signed_in, Browser, PASSWORD};

on_both_backends!(
    an_invitation_link_sets_a_password_once_and_the_user_signs_in_and_out,
    only_active_users_with_dashboard_access_sign_in_and_deactivation_ends_sessions,
    repeated_failures_are_throttled_even_with_the_right_password,
    a_session_ends_after_the_idle_timeout,
    forms_posted_from_another_site_are_refused,
    a_reset_link_sets_a_new_password_once_and_ends_other_sessions,
    an_admin_invites_revokes_and_deactivates_people_and_members_may_not,
    an_admin_issues_credentials_shown_once_and_revokes_them,
);

async fn audit_actions(
    server: &TestServer,
    api_key: &str,
    resource_or_actor: &str,
) -> Vec<(String, String)> {
    let r = server
        .api(api_key)
        .get(&format!(
            "/v1/audit/events?actorId={resource_or_actor}&limit=100"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let events = r
        .body
        .as_object()
        .unwrap()
        .values()
        .find_map(Value::as_array)
        .unwrap();
    events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Dana is invited through the Viewer API, opens her link, is told a weak
/// password will not do, sets a good one, and signs in; the link then no
/// longer works. A wrong password is refused; signing out ends the session.
async fn an_invitation_link_sets_a_password_once_and_the_user_signs_in_and_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let r = server
        .api(&org.api_key)
        .post(
            "/v1/viewer/users",
            json!({"email": "dana@example.org", "firstName": "Dana", "lastName": "Scully",
                   "clinicRole": "Radiologist", "level": "member", "canManageStudies": false,
                   "hasDashboardAccess": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let dana = r.body["userId"].as_str().unwrap().to_owned();
    let link = invitation_link(&server, &org, "dana@example.org");
    assert!(link.starts_with("/ui/invite/"), "{link}");

    let mut browser = Browser::new(&server);
    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("dana@example.org") && form.body.contains("Dana Scully"),
        "{}",
        form.body
    );

    for (password, confirm, says) in [
        ("short", "short", "at least 12"),
        ("password1234", "password1234", "too common"),
        (
            "plum kettle orbit 1994 sandal",
            "plum kettle orbit",
            "not the same",
        ),
    ] {
        let page = browser
            .post(&link, &[("password", password), ("confirm", confirm)])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        assert!(page.body.contains(says), "{password}: {}", page.body);
    }
    let done = browser
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/ui/login?password_set=1");
    let again = browser.get(&link).await;
    assert_eq!(
        again.status,
        StatusCode::GONE,
        "a used invitation link must not open"
    );
    let invitation = server
        .api(&org.api_key)
        .get("/v1/viewer/users/invitations?status=accepted")
        .await;
    assert!(
        invitation.body.to_string().contains(&dana),
        "{}",
        invitation.body
    );

    let wrong = browser
        .post(
            "/ui/login",
            &[
                ("email", "dana@example.org"),
                ("password", "plum kettle orbit 1994 sandals"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("do not match"), "{}", wrong.body);
    assert!(browser.session.is_none());

    // Signed out, the app sends people to sign in, and back where they were going.
    let gate = browser.get("/ui/worklist?severity=stat").await;
    assert_eq!(gate.status, StatusCode::SEE_OTHER);
    assert_eq!(
        gate.location(),
        "/ui/login?next=%2Fui%2Fworklist%3Fseverity%3Dstat"
    );

    let signed = browser
        .post(
            "/ui/login",
            &[
                ("email", "DANA@example.org"),
                ("password", PASSWORD),
                ("next", "/ui/worklist?severity=stat"),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/ui/worklist?severity=stat");
    let cookie = signed.session_cookie().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let token = browser.session.clone().unwrap();
    assert!(token.len() >= 43, "a 256-bit token");

    let worklist = browser.get("/ui/worklist").await;
    assert_eq!(worklist.status, StatusCode::OK);
    assert!(worklist.body.contains("Dana Scully"), "{}", worklist.body);
    let home = browser.get("/ui").await;
    assert_eq!(home.location(), "/ui/worklist");

    // An offsite `next` is not followed.
    let mut other = Browser::new(&server);
    let offsite = other
        .post(
            "/ui/login",
            &[
                ("email", "dana@example.org"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(offsite.location(), "/ui");

    let out = browser.post("/ui/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/ui/login?signed_out=1");
    assert!(browser.session.is_none(), "the cookie is cleared");
    browser.session = Some(token);
    let after = browser.get("/ui/worklist").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "the old token must be dead"
    );

    let actions = audit_actions(&server, &org.api_key, &dana).await;
    for expected in [
        ("user.sign_in", "success"),
        ("user.sign_in", "denied"),
        ("user.sign_out", "success"),
        ("invitation.accept", "success"),
        ("study.search", "success"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, o)| (a.as_str(), o.as_str()) == expected),
            "{expected:?} missing from {actions:?}"
        );
    }
    assert!(
        !server.log().contains(PASSWORD),
        "the password reached the log"
    );
}

async fn only_active_users_with_dashboard_access_sign_in_and_deactivation_ends_sessions(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.api(&org.api_key);
    // A member without dashboard access may accept the invitation but not sign in.
    let r = api
        .post(
            "/v1/viewer/users",
            json!({"email": "nodash@example.org", "firstName": "No", "lastName": "Dash",
                   "clinicRole": "Radiologist", "level": "member", "canManageStudies": false,
                   "hasDashboardAccess": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let link = invitation_link(&server, &org, "nodash@example.org");
    let mut browser = Browser::new(&server);
    let set = browser
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    let refused = browser
        .post(
            "/ui/login",
            &[("email", "nodash@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // An unknown address gets the same answer as a wrong password.
    let unknown = browser
        .post(
            "/ui/login",
            &[("email", "nobody@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("do not match"));

    // Revoking a signed-in user's access ends their session at once.
    let (mut reader, reader_id) = signed_in(&server, &org, "reader", false).await;
    assert_eq!(reader.get("/ui/worklist").await.status, StatusCode::OK);
    let r = api
        .post(
            "/v1/viewer/users/revoke-access",
            json!({"userId": reader_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let gone = reader.get("/ui/worklist").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(gone.location().starts_with("/ui/login"));
    // And removing dashboard access does too, for the next request.
    let (mut other, other_id) = signed_in(&server, &org, "other", false).await;
    let r = api
        .patch(
            &format!("/v1/viewer/users/{other_id}"),
            json!({"hasDashboardAccess": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        other.get("/ui/worklist").await.status,
        StatusCode::SEE_OTHER
    );
    // htmx requests are told where to go instead of getting a page to swap in.
    let fragment = other.htmx_get("/ui/worklist").await;
    assert_eq!(fragment.status, StatusCode::UNAUTHORIZED);
    assert!(fragment.header("hx-redirect").starts_with("/ui/login"));
}

async fn repeated_failures_are_throttled_even_with_the_right_password(backend: Backend) {
    let server = TestServer::start_with(backend, &["--web-max-failed-sign-ins", "3"]).await;
    let org = server.create_org("Acme Imaging");
    let email = "tom@example.org";
    web_support::invited_user(&server, &org, email, "Tom", false).await;
    let mut browser = Browser::new(&server);
    for _ in 0..3 {
        let page = browser
            .post(
                "/ui/login",
                &[("email", email), ("password", "wrong wrong wrong")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = browser
        .post("/ui/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        blocked.body.contains("Too many failed sign-ins"),
        "{}",
        blocked.body
    );
    assert!(browser.session.is_none());
}

async fn a_session_ends_after_the_idle_timeout(backend: Backend) {
    let server = TestServer::start_with(backend, &["--web-idle-timeout-secs", "1"]).await;
    let org = server.create_org("Acme Imaging");
    let (mut browser, _) = signed_in(&server, &org, "idle", false).await;
    assert_eq!(browser.get("/ui/worklist").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let expired = browser.get("/ui/worklist").await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(
        expired.location(),
        "/ui/login?next=%2Fui%2Fworklist&expired=1"
    );
    let login = browser.get(expired.location()).await;
    assert!(
        login.body.contains("Your session has ended"),
        "{}",
        login.body
    );
}

async fn forms_posted_from_another_site_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let (mut browser, _) = signed_in(&server, &org, "csrf", false).await;
    let forged = browser
        .post_from("/ui/logout", &[], "cross-site", false)
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("another site"), "{}", forged.body);
    assert_eq!(
        browser.get("/ui/worklist").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let forged_login = browser
        .post_from(
            "/ui/login",
            &[("email", "x@example.org"), ("password", PASSWORD)],
            "cross-site",
            false,
        )
        .await;
    assert_eq!(forged_login.status, StatusCode::FORBIDDEN);

    // Every page carries the security headers.
    let page = browser.get("/ui/login").await;
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    // A made-up page is the app's own 404, and `/` opens the app.
    let missing = browser.get("/ui/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Page not found"));
    assert_eq!(browser.get("/").await.location(), "/ui");
    // A form that is not a form is a 400 page, not a bare error.
    let bad = browser.post("/ui/login", &[("nothing", "x")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("<html"), "{}", bad.body);
    // A bad link is a clear refusal.
    assert_eq!(
        browser.get("/ui/invite/forged.token").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.get("/ui/reset/forged.token").await.status,
        StatusCode::FORBIDDEN
    );
}

/// The owner (made by create-org, never invited) gets a reset link from the
/// operator, sets a password, and signs in; the link works once, and
/// setting a password signs out every other browser.
async fn a_reset_link_sets_a_new_password_once_and_ends_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let owner = server
        .api(&org.api_key)
        .get(&format!("/v1/viewer/users/{}", org.user_id))
        .await;
    let email = owner.body["email"].as_str().unwrap().to_owned();
    let link = reset_link(&server, &org, &email);
    let mut browser = Browser::new(&server);
    assert_eq!(browser.get(&link).await.status, StatusCode::OK);
    let set = browser
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(browser.get(&link).await.status, StatusCode::GONE);
    browser.sign_in(&email, PASSWORD).await;
    assert_eq!(browser.get("/ui/worklist").await.status, StatusCode::OK);

    let second = reset_link(&server, &org, &email);
    let new_password = "quiet harbour lantern 2031 fig";
    let mut other = Browser::new(&server);
    let set = other
        .post(
            &second,
            &[("password", new_password), ("confirm", new_password)],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(
        browser.get("/ui/worklist").await.status,
        StatusCode::SEE_OTHER,
        "signed out by the reset"
    );
    let old = other
        .post("/ui/login", &[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    other.sign_in(&email, new_password).await;
}

/// The owner signs in, invites Eve from the admin page and passes on the link
/// shown there; Eve signs in. Deactivating Eve ends her session; a member
/// gets 403 on the admin pages, and another organization's ids are 404.
async fn an_admin_invites_revokes_and_deactivates_people_and_members_may_not(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let owner = server
        .api(&org.api_key)
        .get(&format!("/v1/viewer/users/{}", org.user_id))
        .await;
    let owner_email = owner.body["email"].as_str().unwrap().to_owned();
    let link = reset_link(&server, &org, &owner_email);
    let mut admin = Browser::new(&server);
    admin
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    admin.sign_in(&owner_email, PASSWORD).await;
    assert!(
        admin.get("/ui/worklist").await.body.contains("/ui/admin"),
        "admins see the Admin link"
    );

    let invited = admin
        .post(
            "/ui/admin/invitations",
            &[
                ("email", "eve@example.org"),
                ("first_name", "Eve"),
                ("last_name", "Moneypenny"),
                ("clinic_role", "Doctor"),
                ("level", "member"),
                ("has_dashboard_access", "yes"),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let eve_link = invited
        .body
        .split("value=\"")
        .find(|s| s.starts_with("/ui/invite/"))
        .and_then(|s| s.split('"').next())
        .expect("the invitation link on the page")
        .to_owned();
    let duplicate = admin
        .post(
            "/ui/admin/invitations",
            &[
                ("email", "EVE@example.org"),
                ("first_name", "Eve"),
                ("last_name", "Again"),
                ("clinic_role", "Doctor"),
                ("level", "member"),
            ],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        duplicate.body.contains("already exists"),
        "{}",
        duplicate.body
    );

    let mut eve = Browser::new(&server);
    let set = eve
        .post(&eve_link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    eve.sign_in("eve@example.org", PASSWORD).await;
    assert_eq!(
        eve.get("/ui/admin").await.status,
        StatusCode::FORBIDDEN,
        "members are not admins"
    );
    let eve_id = server
        .api(&org.api_key)
        .get("/v1/viewer/users?email=eve@example.org")
        .await
        .body["users"][0]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = eve
        .post(&format!("/ui/admin/users/{}/deactivate", org.user_id), &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let page = admin.get("/ui/admin").await;
    assert!(page.body.contains("eve@example.org") && page.body.contains(&eve_id));
    let done = admin
        .post(&format!("/ui/admin/users/{eve_id}/deactivate"), &[])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        eve.get("/ui/worklist").await.status,
        StatusCode::SEE_OTHER,
        "her session ended"
    );
    let again = admin
        .post(&format!("/ui/admin/users/{eve_id}/reactivate"), &[])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);

    // Another organization's user and invitation ids are not found.
    let theirs = server
        .api(&other.api_key)
        .get(&format!("/v1/viewer/users/{}", other.user_id))
        .await;
    assert_eq!(theirs.status, StatusCode::OK);
    let r = admin
        .post(
            &format!("/ui/admin/users/{}/deactivate", other.user_id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = server
        .api(&other.api_key)
        .post(
            "/v1/viewer/users",
            json!({"email": "z@example.org", "firstName": "Z", "lastName": "Z", "clinicRole": "Radiologist",
                   "level": "member", "canManageStudies": false, "hasDashboardAccess": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let their_invitation = server
        .api(&other.api_key)
        .get("/v1/viewer/users/invitations")
        .await;
    let their_invitation = their_invitation.body.to_string();
    let inv = their_invitation
        .split("\"inv_")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = admin
        .post(&format!("/ui/admin/invitations/inv_{inv}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The owner issues an API key on the admin page: it is shown once, works
/// against the Viewer API, is listed without its secret, and stops working
/// when revoked. Another organization's key cannot be revoked from here.
async fn an_admin_issues_credentials_shown_once_and_revokes_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let owner = server
        .api(&org.api_key)
        .get(&format!("/v1/viewer/users/{}", org.user_id))
        .await;
    let owner_email = owner.body["email"].as_str().unwrap().to_owned();
    let link = reset_link(&server, &org, &owner_email);
    let mut admin = Browser::new(&server);
    admin
        .post(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    admin.sign_in(&owner_email, PASSWORD).await;

    let created = admin
        .post(
            "/ui/admin/credentials",
            &[("kind", "api-key"), ("description", "RIS bridge")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created
        .body
        .split("value=\"")
        .find(|s| s.starts_with("lbk_"))
        .and_then(|s| s.split('"').next())
        .expect("the new key on the page")
        .to_owned();
    assert_eq!(
        server.api(&key).get("/v1/viewer/studies").await.status,
        StatusCode::OK
    );
    let listed = admin.get("/ui/admin").await;
    assert!(listed.body.contains("RIS bridge"));
    assert!(!listed.body.contains(&key), "a secret is shown once only");
    let key_id = created.body.split("credential-").find_map(|s| {
        let id = s.split('"').next()?;
        (s.contains("RIS bridge") && id.len() == 36).then(|| id.to_owned())
    });
    let key_id = key_id.expect("the key's row");
    let revoked = admin
        .post(
            &format!("/ui/admin/credentials/api-key/{key_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(
        server.api(&key).get("/v1/viewer/studies").await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = admin
        .post(
            &format!("/ui/admin/credentials/api-key/{key_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let client = admin
        .post(
            "/ui/admin/credentials",
            &[("kind", "oauth-client"), ("description", "Scanner")],
        )
        .await;
    assert_eq!(client.status, StatusCode::CREATED);
    assert!(
        client.body.contains("lbs_"),
        "the client secret is shown once"
    );

    let theirs = admin
        .post(
            &format!("/ui/admin/credentials/api-key/{}/revoke", other.api_key_id),
            &[],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server
            .api(&other.api_key)
            .get("/v1/viewer/studies")
            .await
            .status,
        StatusCode::OK
    );
    let blank = admin
        .post(
            "/ui/admin/credentials",
            &[("kind", "api-key"), ("description", " ")],
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
}
