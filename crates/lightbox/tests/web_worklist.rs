//! The worklist page over real HTTP, on both backends: columns, filters in the
//! URL, fragments for htmx, keyset paging, the claim rule, roles, and
//! another organization's studies staying invisible.

mod support;
mod web_support;

use reqwest::StatusCode;
use serde_json::json;
use support::{unique_uid, Backend, TestServer};
use web_support::signed_in;

on_both_backends!(
    the_worklist_filters_by_the_url_and_pages_with_its_cursor,
    assign_to_me_is_a_claim_and_actions_follow_roles,
    another_organizations_studies_are_invisible_and_404,
    the_study_page_shows_history_and_only_managers_edit,
    the_live_stream_carries_the_organizations_changes_only,
);

fn row_count(html: &str) -> usize {
    html.matches("data-row").count()
}

async fn the_worklist_filters_by_the_url_and_pages_with_its_cursor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.api(&org.api_key);
    for (description, severity) in [
        ("CT head trauma", "stat"),
        ("MR knee left", "high"),
        ("XR chest PA", "normal"),
    ] {
        api.create_study(json!({"studyInstanceUid": unique_uid(), "studyDescription": description, "severity": severity}))
            .await;
    }
    for n in 0..52 {
        api.create_study(
            json!({"studyInstanceUid": unique_uid(), "studyDescription": format!("Follow-up {n}"), "severity": "normal"}),
        )
        .await;
    }
    let (mut browser, _) = signed_in(&server, &org, "filters", false).await;

    let all = browser.get("/ui/worklist").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.body.starts_with("<!doctype html>"));
    assert_eq!(row_count(&all.body), 50, "one page");
    assert!(all.body.contains("Load more"));
    assert_eq!(all.header("vary"), "HX-Request");

    // STAT and HIGH are written out, not only coloured.
    let stat = browser.get("/ui/worklist?severity=stat").await;
    assert_eq!(row_count(&stat.body), 1);
    assert!(
        stat.body.contains("CT head trauma") && stat.body.contains(">STAT<"),
        "{}",
        stat.body
    );
    assert!(
        stat.body.contains(r#"<option value="stat" selected>"#),
        "the filter shows as chosen"
    );
    let high = browser.get("/ui/worklist?severity=high").await;
    assert!(high.body.contains(">HIGH<") && high.body.contains("MR knee left"));

    // Search as you type: htmx gets the rows only.
    let found = browser.htmx_get("/ui/worklist?q=KNEE").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(!found.body.contains("<html"), "a fragment, not a page");
    assert_eq!(row_count(&found.body), 1);
    assert!(found.body.contains("MR knee left"));
    let none = browser.htmx_get("/ui/worklist?q=nothing-like-this").await;
    assert!(none.body.contains("No studies match"));

    // "Load more" follows the keyset cursor and keeps the filters.
    let page_one = browser.htmx_get("/ui/worklist?q=follow").await;
    assert_eq!(row_count(&page_one.body), 50);
    let more = page_one
        .body
        .split("hx-get=\"")
        .skip(1)
        .find(|s| s.contains("after="))
        .and_then(|s| s.split('"').next())
        .expect("a load-more link")
        .replace("&#38;", "&");
    assert!(more.contains("q=follow"), "{more}");
    let page_two = browser.htmx_get(&more).await;
    assert_eq!(row_count(&page_two.body), 2);
    assert!(!page_two.body.contains("Load more"));

    // Unassigned / assigned to me.
    let unassigned = browser
        .get("/ui/worklist?assignee=none&severity=stat")
        .await;
    assert_eq!(row_count(&unassigned.body), 1);
    let mine = browser.get("/ui/worklist?assignee=me").await;
    assert_eq!(row_count(&mine.body), 0);

    // Bad filters are a 400 page, never a 500.
    for bad in [
        "/ui/worklist?severity=urgent",
        "/ui/worklist?after=not-a-cursor",
        "/ui/worklist?assignee=usr_nope",
        "/ui/worklist?cancelled=maybe",
    ] {
        let page = browser.get(bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.body.contains("<html"), "{bad}");
    }
}

async fn assign_to_me_is_a_claim_and_actions_follow_roles(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.api(&org.api_key);
    let study = api
        .create_study(json!({"studyInstanceUid": unique_uid(), "studyDescription": "CT abdomen", "severity": "stat"}))
        .await;
    let id = study["studyId"].as_str().unwrap().to_owned();
    let (mut ann, ann_id) = signed_in(&server, &org, "Ann", false).await;
    let (mut ben, _) = signed_in(&server, &org, "Ben", false).await;
    let (mut chief, _) = signed_in(&server, &org, "Chief", true).await;

    // Ann claims it (htmx: the row comes back)...
    let claimed = ann
        .htmx_post(
            &format!("/ui/studies/{id}/claim"),
            &[("back", "/ui/worklist")],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.body);
    assert!(
        claimed.body.starts_with("<tr") && claimed.body.contains("(you)"),
        "{}",
        claimed.body
    );
    let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(
        r.body["assignedTo"]["userId"],
        ann_id.as_str(),
        "{}",
        r.body
    );
    // ...so Ben's claim is refused, naming her.
    let refused = ben.htmx_post(&format!("/ui/studies/{id}/claim"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("Already assigned to Ann Reader"),
        "{}",
        refused.body
    );
    // Without scripts, the same refusal is a page.
    let plain = ben.post(&format!("/ui/studies/{id}/claim"), &[]).await;
    assert_eq!(plain.status, StatusCode::CONFLICT);
    assert!(plain.body.contains("Already assigned to Ann Reader"));

    // Ben may not complete Ann's study, nor cancel (he does not manage studies).
    let r = ben
        .htmx_post(&format!("/ui/studies/{id}/complete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ben
        .htmx_post(&format!("/ui/studies/{id}/cancel"), &[("confirmed", "yes")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Ann completes it with a plain form post and lands back on her list.
    let done = ann
        .post(
            &format!("/ui/studies/{id}/complete"),
            &[("back", "/ui/worklist?assignee=me")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/ui/worklist?assignee=me");
    let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(r.body["studyViewerStatus"], "complete");

    // Cancelling asks first (a page without scripts), then cancels.
    let ask = chief.post(&format!("/ui/studies/{id}/cancel"), &[]).await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.body.contains("Are you sure?") && ask.body.contains("CT abdomen"));
    let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(
        r.body["isCancelled"], false,
        "not cancelled before confirming"
    );
    let cancelled = chief
        .htmx_post(&format!("/ui/studies/{id}/cancel"), &[("confirmed", "yes")])
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert!(cancelled.body.contains("Cancelled") && cancelled.body.contains("Uncancel"));
    let again = chief
        .htmx_post(
            &format!("/ui/studies/{id}/uncancel"),
            &[("confirmed", "yes")],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(r.body["isCancelled"], false);

    let events = api
        .get(&format!(
            "/v1/audit/events?resourceId={id}&action=study.claim"
        ))
        .await;
    assert!(
        events.body.to_string().contains("conflict"),
        "{}",
        events.body
    );
}

async fn another_organizations_studies_are_invisible_and_404(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let theirs = server
        .api(&other.api_key)
        .create_study(
            json!({"studyInstanceUid": unique_uid(), "studyDescription": "Other's secret study", "severity": "normal"}),
        )
        .await;
    let their_id = theirs["studyId"].as_str().unwrap();
    let (mut acme_user, _) = signed_in(&server, &acme, "acme", true).await;
    let list = acme_user.get("/ui/worklist").await;
    assert!(!list.body.contains("secret"), "{}", list.body);
    for action in ["claim", "complete", "cancel", "uncancel"] {
        let r = acme_user
            .htmx_post(
                &format!("/ui/studies/{their_id}/{action}"),
                &[("confirmed", "yes")],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}");
        assert!(!r.body.contains("secret"));
    }
    let r = server
        .api(&other.api_key)
        .get(&format!("/v1/viewer/studies/{their_id}"))
        .await;
    assert!(
        r.body["assignedTo"].is_null() && r.body["isCancelled"] == false,
        "{}",
        r.body
    );
    let r = acme_user.htmx_post("/ui/studies/stu_nope/claim", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let page = acme_user.get(&format!("/ui/studies/{their_id}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("secret"));
    let edit = acme_user
        .post(
            &format!("/ui/studies/{their_id}"),
            &[
                ("description", "mine now"),
                ("severity", "stat"),
                ("status", "complete"),
            ],
        )
        .await;
    assert_eq!(edit.status, StatusCode::NOT_FOUND);
}

async fn the_study_page_shows_history_and_only_managers_edit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.api(&org.api_key);
    let study = api
        .create_study(json!({"studyInstanceUid": unique_uid(), "studyDescription": "CT <chest>", "severity": "normal", "metadata": {"room": "3"}}))
        .await;
    let id = study["studyId"].as_str().unwrap().to_owned();
    let (mut reader, _) = signed_in(&server, &org, "Reader", false).await;
    let (mut chief, chief_id) = signed_in(&server, &org, "Chief", true).await;

    let page = reader.get(&format!("/ui/studies/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("CT &#60;chest&#62;") || page.body.contains("CT &lt;chest&gt;"),
        "escaped: {}",
        page.body
    );
    assert!(
        page.body.contains("room") && page.body.contains("study.create"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("save-study"),
        "a reader gets no edit form"
    );
    let refused = reader
        .post(
            &format!("/ui/studies/{id}"),
            &[
                ("description", "x"),
                ("severity", "stat"),
                ("status", "complete"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let form = [
        ("description", "CT chest with contrast"),
        ("severity", "high"),
        ("status", "incomplete"),
        ("assignee", chief_id.as_str()),
        ("metadata", "room=4\nprotocol=PE"),
    ];
    let saved = chief.post(&format!("/ui/studies/{id}"), &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let r = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(
        r.body["studyDescription"], "CT chest with contrast",
        "{}",
        r.body
    );
    assert_eq!(r.body["severity"], "high");
    assert_eq!(r.body["assignedTo"]["userId"], chief_id.as_str());
    assert_eq!(r.body["metadata"]["protocol"], "PE");
    let after = chief.get(saved.location()).await;
    assert!(
        after.body.contains("Saved.") && after.body.contains("study.update"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("Chief Reader"),
        "the history names people"
    );

    let bad = chief
        .post(
            &format!("/ui/studies/{id}"),
            &[
                ("description", ""),
                ("severity", "high"),
                ("status", "incomplete"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("study-error"), "{}", bad.body);
    let bad = chief
        .post(
            &format!("/ui/studies/{id}"),
            &[
                ("description", "x"),
                ("severity", "urgent"),
                ("status", "incomplete"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A signed-in worklist's event stream gets a row for a study the API creates
/// and for a claim, and nothing of another organization's.
async fn the_live_stream_carries_the_organizations_changes_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let acme = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let (browser, _) = signed_in(&server, &acme, "live", false).await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/ui/worklist/events", server.base))
        .header(
            "cookie",
            format!(
                "{}={}",
                web_support::SESSION_COOKIE,
                browser.session.clone().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    server
        .api(&other.api_key)
        .create_study(
            json!({"studyInstanceUid": unique_uid(), "studyDescription": "Other's secret study", "severity": "normal"}),
        )
        .await;
    let ours = server
        .api(&acme.api_key)
        .create_study(json!({"studyInstanceUid": unique_uid(), "studyDescription": "Arrived live", "severity": "stat"}))
        .await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("Arrived live") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the study's event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: study"), "{seen}");
    assert!(
        seen.contains(ours["studyId"].as_str().unwrap()) && seen.contains("STAT"),
        "{seen}"
    );
    assert!(
        !seen.contains("secret"),
        "another organization's study leaked: {seen}"
    );
    // Without a session there is no stream.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui/worklist/events", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}
