//! Viewer users, invitations and ephemeral sessions over real HTTP, on SQLite and PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{unique_uid, Api, Backend, TestServer};

on_both_backends!(
    invited_users_are_managed_and_listed,
    revoked_users_cannot_be_assigned_until_reactivated,
    invitations_follow_their_lifecycle,
    ephemeral_sessions_open_for_a_short_while,
    users_and_invitations_stay_in_their_organization,
);

fn invite_body(email: &str, level: &str) -> Value {
    json!({
        "canManageStudies": true, "clinicRole": "Radiologist", "email": email,
        "firstName": "Émile", "lastName": "Durand", "hasDashboardAccess": level == "admin", "level": level,
    })
}

async fn invite(api: &Api, email: &str, level: &str) -> Value {
    let r = api
        .post("/v1/viewer/users", invite_body(email, level))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// The invitation of `user`, found through the listing's `userId` filter.
async fn invitation_of(api: &Api, user: &str) -> Value {
    let r = api
        .get(&format!("/v1/viewer/users/invitations?userId={user}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body["invitations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.body);
    list[0].clone()
}

async fn invited_users_are_managed_and_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);

    let user = invite(&api, "emile@acme.example", "member").await;
    let id = user["userId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("usr_") && id.len() == 36);
    assert_eq!(user["invitedSource"], "api");
    assert_eq!(user["level"], "member");
    assert_eq!(user["clinicRole"], "Radiologist");
    assert_eq!(user["isActive"], true);
    assert_eq!(user["lastLoginAt"], Value::Null);
    assert_eq!(api.get(&format!("/v1/viewer/users/{id}")).await.body, user);

    let invitation = invitation_of(&api, &id).await;
    assert_eq!(invitation["status"], "sent");
    assert_eq!(invitation["email"], "emile@acme.example");
    assert_eq!(invitation["clinicId"], org.org_id.as_str());
    assert_eq!(invitation["inviterId"], Value::Null);
    assert_eq!(invitation["invitedByApiKeyId"], org.api_key_id.as_str());
    assert!(invitation["expiry"].as_str() > invitation["createdAt"].as_str());

    // Duplicate e-mail (any case) is a permanent conflict; other rule breaks are 400s.
    let dup = api
        .post(
            "/v1/viewer/users",
            invite_body("EMILE@acme.example", "member"),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.headers["x-should-retry"], "false");
    for (body, field) in [
        (invite_body("o@acme.example", "owner"), "level"),
        (
            json!({"level": "admin", "hasDashboardAccess": false}),
            "hasDashboardAccess",
        ),
        (json!({"clinicRole": "radiologist"}), "clinicRole"),
        (json!({"phoneNumber": "555-1234"}), "phoneNumber"),
        (json!({"email": "not-an-email"}), "email"),
    ] {
        let mut full = invite_body("x@acme.example", "member");
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let r = api.post("/v1/viewer/users", full.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{full}: {}", r.body);
        assert!(
            r.body["field"] == field || r.body["message"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.body
        );
    }

    // PATCH: absent stays, null clears the nullable fields, the rest refuse null.
    let path = format!("/v1/viewer/users/{id}");
    let r = api
        .patch(&path, json!({"middleName": "Louis", "phoneNumber": "5551234567", "level": "admin", "hasDashboardAccess": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["middleName"].as_str(), r.body["level"].as_str()),
        (Some("Louis"), Some("admin"))
    );
    let r = api.patch(&path, json!({"middleName": null})).await;
    assert_eq!(r.body["middleName"], Value::Null);
    assert_eq!(r.body["phoneNumber"], "5551234567");
    for body in [
        json!({"clinicRole": null}),
        json!({"firstName": null}),
        json!({"email": "new@acme.example"}),
        json!({"level": "owner"}),
        json!({"hasDashboardAccess": false}),
    ] {
        let r = api.patch(&path, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    let owner = format!("/v1/viewer/users/{}", org.user_id);
    assert_eq!(
        api.patch(&owner, json!({"level": "member"})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Listing: filters and cursor pages over every user (the owner included).
    for i in 0..6 {
        invite(&api, &format!("member{i}@acme.example"), "member").await;
    }
    let page = |q: &str| format!("/v1/viewer/users?{q}");
    let emails = |v: &Value| -> Vec<String> {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        emails(&api.get(&page("email=EMILE@ACME.EXAMPLE")).await.body),
        ["emile@acme.example"]
    );
    assert_eq!(
        api.get(&page("firstName=émi")).await.body["users"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        emails(&api.get(&page("level=admin")).await.body),
        ["emile@acme.example"]
    );
    assert_eq!(
        api.get(&page("level=owner")).await.body["users"][0]["userId"],
        org.user_id.as_str()
    );
    assert_eq!(
        api.get(&page("invitedSource=dashboard")).await.body["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = api
            .get(&page(&format!("limit=3&cursor={cursor}")))
            .await
            .body;
        seen.extend(emails(&r));
        if r["hasMore"] == false {
            break;
        }
        cursor = r["cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], "member5@acme.example");
    assert_eq!(
        api.get(&page("level=boss")).await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn revoked_users_cannot_be_assigned_until_reactivated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let user = invite(&api, "ann@acme.example", "member").await;
    let id = user["userId"].as_str().unwrap();
    let study = api
        .create_study(json!({"severity": "high", "studyDescription": "CT", "studyInstanceUid": unique_uid(), "assignedTo": id}))
        .await;

    let r = api
        .post("/v1/viewer/users/revoke-access", json!({"userId": id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"], true);
    assert_eq!(
        api.get(&format!("/v1/viewer/users/{id}")).await.body["isActive"],
        false
    );
    assert_eq!(invitation_of(&api, id).await["status"], "revoked");
    let again = api
        .post("/v1/viewer/users/revoke-access", json!({"userId": id}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // Existing assignments stay visible; new ones are refused.
    let study_path = format!("/v1/viewer/studies/{}", study["studyId"].as_str().unwrap());
    assert_eq!(api.get(&study_path).await.body["assignedTo"]["userId"], id);
    let new_study = json!({"severity": "high", "studyDescription": "CT", "studyInstanceUid": unique_uid(), "assignedTo": id});
    assert_eq!(
        api.post("/v1/viewer/studies", new_study.clone())
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.patch(&study_path, json!({"assignedTo": null}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.patch(&study_path, json!({"assignedTo": id}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    assert_eq!(
        api.post("/v1/viewer/users/reactivate", json!({"userId": id}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.post("/v1/viewer/users/reactivate", json!({"userId": id}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.post("/v1/viewer/studies", new_study).await.status,
        StatusCode::CREATED
    );

    let owner_revoke = api
        .post(
            "/v1/viewer/users/revoke-access",
            json!({"userId": org.user_id}),
        )
        .await;
    assert_eq!(owner_revoke.status, StatusCode::UNPROCESSABLE_ENTITY);
    for body in [json!({}), json!({"userId": "nobody"})] {
        assert_eq!(
            api.post("/v1/viewer/users/revoke-access", body)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
    }
    let unknown = json!({"userId": format!("usr_{}", "0".repeat(32))});
    assert_eq!(
        api.post("/v1/viewer/users/reactivate", unknown)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Fixed segments win over `{userId}`; read as an id they are a bad id.
    assert_eq!(
        api.get("/v1/viewer/users/reactivate").await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn invitations_follow_their_lifecycle(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let a = invite(&api, "a@acme.example", "member").await;
    let b = invite(&api, "b@acme.example", "member").await;
    let c = invite(&api, "c@acme.example", "member").await;
    let (a_id, b_id, c_id) = (
        a["userId"].as_str().unwrap(),
        b["userId"].as_str().unwrap(),
        c["userId"].as_str().unwrap(),
    );
    let inv_a = invitation_of(&api, a_id).await;
    let inv_a_path = format!(
        "/v1/viewer/users/invitations/{}",
        inv_a["invitationId"].as_str().unwrap()
    );
    assert_eq!(api.get(&inv_a_path).await.body, inv_a);

    // Editing an open invitation edits the invited user.
    let r = api
        .patch(&inv_a_path, json!({"firstName": "Ada", "suffix1": "MD"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["firstName"].as_str(), r.body["suffix1"].as_str()),
        (Some("Ada"), Some("MD"))
    );
    assert_eq!(
        api.get(&format!("/v1/viewer/users/{a_id}")).await.body["firstName"],
        "Ada"
    );

    // Revoke by id, by user, and refuse what does not add up.
    let rev = "/v1/viewer/users/invitations/revoke";
    assert_eq!(
        api.post(rev, json!({"invitationId": inv_a["invitationId"]}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.post(rev, json!({"userId": b_id})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.post(rev, json!({"userId": a_id})).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.post(rev, json!({})).await.status,
        StatusCode::BAD_REQUEST
    );
    let inv_c = invitation_of(&api, c_id).await;
    let mismatch = api
        .post(
            rev,
            json!({"invitationId": inv_c["invitationId"], "userId": a_id}),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.patch(&inv_a_path, json!({"firstName": "Late"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.get(&format!("/v1/viewer/users/{b_id}")).await.body["isActive"],
        false
    );

    let list = |q: String| {
        let api = api.clone();
        async move {
            let r = api.get(&format!("/v1/viewer/users/invitations?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            let mut ids: Vec<String> = r.body["invitations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["userId"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<&str>| {
        v.sort();
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(list("status=sent".into()).await, sorted(vec![c_id]));
    assert_eq!(
        list("status=revoked%2Csent".into()).await,
        sorted(vec![a_id, b_id, c_id])
    );
    assert_eq!(list("status=".into()).await.len(), 3);
    assert_eq!(list("expired=expired".into()).await.len(), 0);
    assert_eq!(list("expired=not-expired".into()).await.len(), 3);
    let today = inv_a["createdAt"].as_str().unwrap()[..10].to_owned();
    assert_eq!(
        list(format!("startDate={today}&endDate={today}"))
            .await
            .len(),
        3
    );
    assert_eq!(list("endDate=2000-01-01".into()).await.len(), 0);
    assert_eq!(list("startDate=2999-01-01".into()).await.len(), 0);
    for bad in [
        "status=pending",
        "expired=maybe",
        "startDate=01/02/2024",
        "userId=bob",
    ] {
        let r = api
            .get(&format!("/v1/viewer/users/invitations?{bad}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn ephemeral_sessions_open_for_a_short_while(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let r = api
        .post(
            "/v1/viewer/ephemeral-sessions",
            json!({"retrievalId": "r-<42>", "hangingProtocol": {"layout": "2x2", "viewportAssignments": ["a", null, "b", null]}, "options": {"snake_key": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = r.body["url"].as_str().unwrap();
    let page = reqwest::get(url).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("r-&lt;42&gt;") && html.contains("2x2"),
        "{html}"
    );
    let forged = url.replace("/viewer/session/", "/viewer/open/");
    assert_eq!(
        reqwest::get(&forged).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    for body in [
        json!({"retrievalId": ""}),
        json!({}),
        json!({"retrievalId": "r", "hangingProtocol": {"layout": "2x2", "viewportAssignments": ["a"]}}),
        json!({"retrievalId": "r", "hangingProtocol": {"layout": "5x5", "viewportAssignments": []}}),
        json!({"retrievalId": "r", "options": {"big": "x".repeat(3100)}}),
    ] {
        let r = api
            .post("/v1/viewer/ephemeral-sessions", body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
}

async fn users_and_invitations_stay_in_their_organization(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.create_org("A");
    let b = server.create_org("B");
    let (api_a, api_b) = (server.api(&a.api_key), server.api(&b.api_key));
    let user = invite(&api_a, "shared@example.org", "member").await;
    let id = user["userId"].as_str().unwrap();
    let inv = invitation_of(&api_a, id).await;
    let inv_path = format!(
        "/v1/viewer/users/invitations/{}",
        inv["invitationId"].as_str().unwrap()
    );

    assert_eq!(
        api_b.get(&format!("/v1/viewer/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api_b
            .patch(&format!("/v1/viewer/users/{id}"), json!({"firstName": "X"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api_b.get(&inv_path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api_b
            .patch(&inv_path, json!({"firstName": "X"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for (path, body) in [
        ("/v1/viewer/users/revoke-access", json!({"userId": id})),
        ("/v1/viewer/users/reactivate", json!({"userId": id})),
        (
            "/v1/viewer/users/invitations/revoke",
            json!({"invitationId": inv["invitationId"]}),
        ),
        ("/v1/viewer/users/invitations/revoke", json!({"userId": id})),
    ] {
        assert_eq!(
            api_b.post(path, body).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let b_users = api_b.get("/v1/viewer/users?limit=100").await.body;
    assert_eq!(
        b_users["users"].as_array().unwrap().len(),
        1,
        "only B's owner: {b_users}"
    );
    assert_eq!(
        api_b
            .get(&format!("/v1/viewer/users/invitations?userId={id}"))
            .await
            .body["invitations"],
        json!([])
    );
    // The same e-mail may be invited in another organization.
    invite(&api_b, "shared@example.org", "member").await;
    assert_eq!(api_a.get(&inv_path).await.body["status"], "sent");
    assert_eq!(
        api_a.get(&format!("/v1/viewer/users/{id}")).await.body["firstName"],
        "Émile"
    );
}
