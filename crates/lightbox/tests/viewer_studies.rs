//! The Viewer studies API over real HTTP, on SQLite and on PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use support::{unique_uid, Backend, TestServer};

on_both_backends!(
    create_and_read_back,
    invalid_input_is_a_400_naming_the_problem,
    update_tells_absent_from_null,
    every_list_filter,
    keyset_pagination_serves_every_study_once,
    cancel_uncancel_and_study_selectors,
    reroute_links_open_the_study_until_they_expire,
    organizations_never_see_each_other,
    credentials_are_checked_and_never_stored_in_clear,
    concurrent_creates_of_one_uid_make_one_study,
);

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.len() == 24)
}

async fn create_and_read_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let reader = server.create_user(&org, "reader@acme.example");
    let api = server.api(&org.api_key);
    let uid = unique_uid();

    let study = api
        .create_study(json!({
            "severity": "stat",
            "studyDescription": "CT Chest w/o contrast",
            "studyInstanceUid": uid,
            "assignedTo": reader,
            "expressCustomerId": "cus_7f3a",
            "metadata": {"accession": "A-100", "Modality": "CT"}
        }))
        .await;
    let id = study["studyId"].as_str().unwrap();
    assert!(id.starts_with("stu_") && id.len() == 36, "{id}");
    assert_eq!(study["studyInstanceUid"], uid.as_str());
    assert_eq!(study["studyDescription"], "CT Chest w/o contrast");
    assert_eq!(study["severity"], "stat");
    assert_eq!(study["studyViewerStatus"], "incomplete");
    assert_eq!(study["isCancelled"], false);
    assert_eq!(study["cancelledAt"], Value::Null);
    assert!(is_rfc3339_utc(&study["createdAt"]) && is_rfc3339_utc(&study["updatedAt"]));
    assert_eq!(study["assignedTo"]["userId"], reader.as_str());
    assert_eq!(study["assignedTo"]["email"], "reader@acme.example");
    assert_eq!(study["assignedTo"]["firstName"], "Rita");
    assert_eq!(
        study["createdByApiKey"]["apiKeyId"],
        org.api_key_id.as_str()
    );
    assert_eq!(study["createdByUser"], Value::Null);
    assert_eq!(study["expressCustomer"]["expressCustomerId"], "cus_7f3a");
    assert_eq!(
        study["metadata"],
        json!({"accession": "A-100", "Modality": "CT"})
    );

    let fetched = api.get(&format!("/v1/viewer/studies/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, study);
    let by_uid = api.get(&format!("/v1/viewer/studies/by-uid/{uid}")).await;
    assert_eq!(by_uid.status, StatusCode::OK);
    assert_eq!(by_uid.body, study);

    // A minimal study: no assignee, no customer, empty metadata.
    let minimal = api
        .create_study(json!({"severity": "normal", "studyDescription": "XR", "studyInstanceUid": unique_uid()}))
        .await;
    assert_eq!(minimal["assignedTo"], Value::Null);
    assert_eq!(minimal["expressCustomer"], Value::Null);
    assert_eq!(minimal["metadata"], json!({}));

    let missing = api
        .get(&format!("/v1/viewer/studies/stu_{}", "0".repeat(32)))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
    let missing_uid = api
        .get(&format!("/v1/viewer/studies/by-uid/{}", unique_uid()))
        .await;
    assert_eq!(missing_uid.status, StatusCode::NOT_FOUND);
}

async fn invalid_input_is_a_400_naming_the_problem(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let other = server.create_org("Other");
    let outsider = server.create_user(&other, "outsider@other.example");
    let api = server.api(&org.api_key);
    let study = |overrides: Value| {
        let mut body = json!({"severity": "high", "studyDescription": "MR Brain", "studyInstanceUid": unique_uid()});
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (
            study(json!({"studyInstanceUid": "1.02.3"})),
            "studyInstanceUid",
        ),
        (
            study(json!({"studyInstanceUid": "1.2.abc"})),
            "studyInstanceUid",
        ),
        (
            study(json!({"studyInstanceUid": format!("1.{}", "2".repeat(63))})),
            "studyInstanceUid",
        ),
        (
            study(json!({"studyInstanceUid": "1..2"})),
            "studyInstanceUid",
        ),
        (study(json!({"severity": "urgent"})), "severity"),
        (
            study(json!({"studyDescription": "   "})),
            "studyDescription",
        ),
        (study(json!({"metadata": many})), "metadata"),
        (
            study(json!({"metadata": {"k".repeat(101): "v"}})),
            "metadata",
        ),
        (
            study(json!({"metadata": {"k": "v".repeat(1001)}})),
            "metadata",
        ),
        (study(json!({"metadata": {"k": 1}})), "metadata"),
        (study(json!({"assignedTo": "bob"})), "assignedTo"),
        (
            study(json!({"expressCustomerId": "acme"})),
            "expressCustomerId",
        ),
        (
            json!({"severity": "high", "studyDescription": "no uid"}),
            "studyInstanceUid",
        ),
    ];
    for (body, field) in cases {
        let r = api.post("/v1/viewer/studies", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} -> {}", r.body);
        assert_eq!(r.body["type"], "invalid_request");
        let names_field =
            r.body["field"] == field || r.body["message"].as_str().unwrap().contains(field);
        assert!(names_field, "{field}: {}", r.body);
    }
    let r = api
        .send(reqwest::Method::POST, "/v1/viewer/studies", None)
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let raw = api
        .http
        .post(format!("{}/v1/viewer/studies", api.base))
        .bearer_auth(&org.api_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);

    // The assignee must be a user of the caller's organization.
    let r = api
        .post("/v1/viewer/studies", study(json!({"assignedTo": outsider})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    for query in [
        "limit=0",
        "limit=101",
        "limit=2.5",
        "limit=x",
        "cursor=garbage",
        "cursor=c3R1ZGllczp4",
        "severity=low",
        "isCancelled=yes",
        "studyViewerStatus=done",
        "assignedTo=usr_1",
    ] {
        let r = api.get(&format!("/v1/viewer/studies?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
    }
    for path in [
        "/v1/viewer/studies/not-an-id",
        "/v1/viewer/studies/by-uid/1.2.x",
    ] {
        assert_eq!(
            api.get(path).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    // Unknown routes and methods answer in JSON too.
    assert_eq!(
        api.get("/v1/viewer/nothing-here").await.status,
        StatusCode::NOT_FOUND
    );
    // As upstream, an action path read like a study is a bad study id.
    let r = api.get("/v1/viewer/studies/cancel").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "studyId");
    let r = api
        .send(reqwest::Method::DELETE, "/v1/viewer/studies/cancel", None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["type"], "method_not_allowed");
}

async fn update_tells_absent_from_null(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let reader = server.create_user(&org, "reader@acme.example");
    let api = server.api(&org.api_key);
    let study = api
        .create_study(json!({
            "severity": "normal", "studyDescription": "US Abdomen", "studyInstanceUid": unique_uid(),
            "assignedTo": reader, "metadata": {"a": "1", "b": "2"}, "expressCustomerId": "cus_1"
        }))
        .await;
    let path = format!("/v1/viewer/studies/{}", study["studyId"].as_str().unwrap());

    // An empty patch changes nothing.
    let same = api.patch(&path, json!({})).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body, study);

    // Absent fields stay; sent fields change; metadata is replaced, not merged.
    let r = api
        .patch(
            &path,
            json!({"severity": "stat", "studyViewerStatus": "complete", "metadata": {"c": "3"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["severity"], "stat");
    assert_eq!(r.body["studyViewerStatus"], "complete");
    assert_eq!(r.body["metadata"], json!({"c": "3"}));
    assert_eq!(r.body["assignedTo"]["userId"], reader.as_str());
    assert_eq!(r.body["studyDescription"], "US Abdomen");
    assert_eq!(r.body["expressCustomer"]["expressCustomerId"], "cus_1");
    assert!(r.body["updatedAt"].as_str() >= study["updatedAt"].as_str());

    // null unassigns and clears metadata; the change is persisted.
    let r = api
        .patch(
            &path,
            json!({"assignedTo": null, "metadata": null, "studyDescription": "US Abd"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored = api.get(&path).await.body;
    assert_eq!(stored["assignedTo"], Value::Null);
    assert_eq!(stored["metadata"], json!({}));
    assert_eq!(stored["studyDescription"], "US Abd");
    assert_eq!(stored["severity"], "stat");

    // Reassign, and fields that cannot be null are refused with nothing changed.
    let r = api.patch(&path, json!({"assignedTo": reader})).await;
    assert_eq!(r.body["assignedTo"]["userId"], reader.as_str());
    for body in [
        json!({"severity": null}),
        json!({"studyDescription": null}),
        json!({"studyViewerStatus": null}),
        json!({"severity": "urgent", "studyDescription": "x"}),
    ] {
        let r = api.patch(&path, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    assert_eq!(api.get(&path).await.body["studyDescription"], "US Abd");
    let missing = api
        .patch(
            &format!("/v1/viewer/studies/stu_{}", "a".repeat(32)),
            json!({"severity": "high"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// The ids of a listing, in order, following every page.
async fn list_ids(api: &support::Api, query: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/v1/viewer/studies?limit={limit}");
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        let page = r.body["studies"].as_array().unwrap();
        assert!(page.len() <= limit as usize);
        ids.extend(
            page.iter()
                .map(|s| s["studyId"].as_str().unwrap().to_owned()),
        );
        match (
            r.body["hasMore"].as_bool().unwrap(),
            r.body["cursor"].as_str(),
        ) {
            (true, Some(c)) => cursor = Some(c.to_owned()),
            (false, None) => return ids,
            other => panic!("inconsistent page end: {other:?}"),
        }
    }
}

async fn every_list_filter(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let ann = server.create_user(&org, "ann@acme.example");
    let bob = server.create_user(&org, "bob@acme.example");
    let api = server.api(&org.api_key);
    let specs = [
        ("stat", "CT Head 100% urgent", Some(&ann), Some("cus_a")),
        ("high", "MR Knee_left", Some(&bob), None),
        ("normal", "ct head follow-up", None, Some("cus_b")),
        ("normal", "XR Chest", Some(&ann), None),
        ("stat", "Ünïcode Hëad", None, None),
    ];
    let mut ids = Vec::new();
    for (severity, description, assignee, customer) in specs {
        let mut body = json!({"severity": severity, "studyDescription": description, "studyInstanceUid": unique_uid()});
        if let Some(a) = assignee {
            body["assignedTo"] = json!(a);
        }
        if let Some(c) = customer {
            body["expressCustomerId"] = json!(c);
        }
        ids.push(
            api.create_study(body).await["studyId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    api.post("/v1/viewer/studies/cancel", json!({"studyId": ids[1]}))
        .await;
    api.patch(
        &format!("/v1/viewer/studies/{}", ids[3]),
        json!({"studyViewerStatus": "complete"}),
    )
    .await;

    let expect = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().rev().map(|&i| ids[i].clone()).collect()
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (String::new(), expect(&[0, 1, 2, 3, 4])),
        (format!("assignedTo={ann}"), expect(&[0, 3])),
        ("assignedTo=null".into(), expect(&[2, 4])),
        ("assignedTo=".into(), expect(&[2, 4])),
        ("isCancelled=true".into(), expect(&[1])),
        ("isCancelled=false".into(), expect(&[0, 2, 3, 4])),
        ("severity=stat".into(), expect(&[0, 4])),
        ("studyViewerStatus=complete".into(), expect(&[3])),
        ("studyViewerStatus=incomplete".into(), expect(&[0, 1, 2, 4])),
        ("studyDescription=HEAD".into(), expect(&[0, 2])),
        ("studyDescription=h%C3%8BAD".into(), expect(&[4])),
        ("studyDescription=100%25".into(), expect(&[0])),
        ("studyDescription=e_l".into(), expect(&[1])),
        ("studyDescription=e%25l".into(), expect(&[])),
        ("studyDescription=ct+head".into(), expect(&[0, 2])),
        ("expressCustomerId=cus_a".into(), expect(&[0])),
        ("expressCustomerId=null".into(), expect(&[1, 3, 4])),
        (
            format!("assignedTo={ann}&severity=normal&studyViewerStatus=complete"),
            expect(&[3]),
        ),
        (
            "severity=stat&assignedTo=null&studyDescription=%C3%ABad".into(),
            expect(&[4]),
        ),
        ("unknownParam=1&severity=".into(), expect(&[0, 1, 2, 3, 4])),
    ];
    for (query, expected) in cases {
        assert_eq!(list_ids(&api, &query, 2).await, expected, "query {query:?}");
    }
    let r = api.get("/v1/viewer/studies?limit=10.0&severity=stat").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["studies"].as_array().unwrap().len(), 2);
}

async fn keyset_pagination_serves_every_study_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let mut created = Vec::new();
    for i in 0..61 {
        let severity = if i % 3 == 0 { "high" } else { "normal" };
        let s = api
            .create_study(json!({"severity": severity, "studyDescription": format!("Study {i}"), "studyInstanceUid": unique_uid()}))
            .await;
        created.push((s["studyId"].as_str().unwrap().to_owned(), severity));
    }
    let newest_first: Vec<String> = created.iter().rev().map(|(id, _)| id.clone()).collect();
    for limit in [1, 7, 25, 61, 100] {
        assert_eq!(
            list_ids(&api, "", limit).await,
            newest_first,
            "limit {limit}"
        );
    }
    // Filters hold across pages.
    let high: Vec<String> = created
        .iter()
        .rev()
        .filter(|(_, s)| *s == "high")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(list_ids(&api, "severity=high", 4).await, high);
    // The default page is 25.
    let first = api.get("/v1/viewer/studies").await.body;
    assert_eq!(first["studies"].as_array().unwrap().len(), 25);
    assert_eq!(first["hasMore"], true);
    // A cursor is opaque but stable: reusing it gives the same page.
    let cursor = first["cursor"].as_str().unwrap();
    let a = api
        .get(&format!("/v1/viewer/studies?cursor={cursor}"))
        .await
        .body;
    let b = api
        .get(&format!("/v1/viewer/studies?cursor={cursor}"))
        .await
        .body;
    assert_eq!(a, b);
    let unique: HashSet<_> = newest_first.iter().collect();
    assert_eq!(unique.len(), 61);
}

async fn cancel_uncancel_and_study_selectors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let uid = unique_uid();
    let study = api
        .create_study(
            json!({"severity": "high", "studyDescription": "CT", "studyInstanceUid": uid}),
        )
        .await;
    let id = study["studyId"].as_str().unwrap();
    let other = api
        .create_study(
            json!({"severity": "high", "studyDescription": "CT", "studyInstanceUid": unique_uid()}),
        )
        .await;

    let r = api
        .post("/v1/viewer/studies/cancel", json!({"studyId": id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"], true);
    let stored = api.get(&format!("/v1/viewer/studies/{id}")).await.body;
    assert_eq!(stored["isCancelled"], true);
    assert!(is_rfc3339_utc(&stored["cancelledAt"]));

    let again = api
        .post(
            "/v1/viewer/studies/cancel",
            json!({"studyInstanceUid": uid}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.headers["x-should-retry"], "false");

    let r = api
        .post(
            "/v1/viewer/studies/uncancel",
            json!({"studyId": id, "studyInstanceUid": uid}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored = api.get(&format!("/v1/viewer/studies/{id}")).await.body;
    assert_eq!(stored["isCancelled"], false);
    assert_eq!(stored["cancelledAt"], Value::Null);
    assert_eq!(
        api.post("/v1/viewer/studies/uncancel", json!({"studyId": id}))
            .await
            .status,
        StatusCode::CONFLICT
    );

    for path in ["cancel", "uncancel", "reroute-url"] {
        let path = format!("/v1/viewer/studies/{path}");
        let neither = api.post(&path, json!({})).await;
        assert_eq!(neither.status, StatusCode::BAD_REQUEST, "{path}");
        let disagree = api
            .post(
                &path,
                json!({"studyId": other["studyId"], "studyInstanceUid": uid}),
            )
            .await;
        assert_eq!(
            disagree.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            disagree.body
        );
        let unknown = api
            .post(&path, json!({"studyInstanceUid": unique_uid()}))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Nothing above touched the other study.
    assert_eq!(
        api.get(&format!(
            "/v1/viewer/studies/{}",
            other["studyId"].as_str().unwrap()
        ))
        .await
        .body,
        other
    );
}

async fn reroute_links_open_the_study_until_they_expire(backend: Backend) {
    let server = TestServer::start_with(backend, &["--reroute-ttl-secs", "2"]).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let uid = unique_uid();
    api.create_study(json!({"severity": "stat", "studyDescription": "<b>CT</b> & more", "studyInstanceUid": uid})).await;
    let r = api
        .post(
            "/v1/viewer/studies/reroute-url",
            json!({"studyInstanceUid": uid}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = r.body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&server.base), "{url}");

    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(&uid));
    assert!(
        html.contains("&lt;b&gt;CT&lt;/b&gt; &amp; more"),
        "description must be escaped: {html}"
    );

    // Any altered character breaks the signature.
    let (prefix, sig) = url.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let flipped = format!("{first}{}", &sig[1..]);
    for bad in [
        format!("{prefix}.{flipped}"),
        format!("{prefix}x.{sig}"),
        format!("{}/viewer/open/nonsense", server.base),
    ] {
        assert_eq!(
            reqwest::get(&bad).await.unwrap().status(),
            StatusCode::FORBIDDEN,
            "{bad}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::GONE);
}

async fn organizations_never_see_each_other(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.create_org("A");
    let b = server.create_org("B");
    let (api_a, api_b) = (server.api(&a.api_key), server.api(&b.api_key));
    let uid = unique_uid();
    let study = api_a
        .create_study(
            json!({"severity": "high", "studyDescription": "A's study", "studyInstanceUid": uid}),
        )
        .await;
    let id = study["studyId"].as_str().unwrap();

    assert_eq!(
        api_b.get(&format!("/v1/viewer/studies/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api_b
            .get(&format!("/v1/viewer/studies/by-uid/{uid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api_b
            .patch(
                &format!("/v1/viewer/studies/{id}"),
                json!({"severity": "stat"})
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for path in ["cancel", "uncancel", "reroute-url"] {
        let p = format!("/v1/viewer/studies/{path}");
        assert_eq!(
            api_b.post(&p, json!({"studyId": id})).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            api_b
                .post(&p, json!({"studyInstanceUid": uid}))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let listing = api_b
        .get("/v1/viewer/studies?studyDescription=study")
        .await
        .body;
    assert_eq!(listing["studies"], json!([]));
    // B's owner cannot be made A's assignee.
    let r = api_a
        .patch(
            &format!("/v1/viewer/studies/{id}"),
            json!({"assignedTo": b.user_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A cursor minted for A's listing reveals nothing to B.
    let _ = api_a
        .create_study(
            json!({"severity": "high", "studyDescription": "A2", "studyInstanceUid": unique_uid()}),
        )
        .await;
    let cursor = api_a.get("/v1/viewer/studies?limit=1").await.body["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api_b
        .get(&format!("/v1/viewer/studies?cursor={cursor}"))
        .await;
    assert_eq!(r.body["studies"], json!([]));

    // The same UID is independent in each organization, and A's study is untouched.
    let b_study = api_b
        .create_study(
            json!({"severity": "normal", "studyDescription": "B's study", "studyInstanceUid": uid}),
        )
        .await;
    assert_ne!(b_study["studyId"], study["studyId"]);
    assert_eq!(
        api_a
            .get(&format!("/v1/viewer/studies/by-uid/{uid}"))
            .await
            .body,
        study
    );
    let dup = api_a
        .post(
            "/v1/viewer/studies",
            json!({"severity": "normal", "studyDescription": "again", "studyInstanceUid": uid}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.headers["x-should-retry"], "false");
}

async fn credentials_are_checked_and_never_stored_in_clear(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let body =
        json!({"severity": "high", "studyDescription": "CT", "studyInstanceUid": unique_uid()});
    let tampered = format!("{}x", org.api_key);
    let foreign_secret = {
        let (head, _) = org.api_key.rsplit_once('_').unwrap();
        format!("{head}_{}", "A".repeat(43))
    };
    let anonymous = server.anonymous();
    assert_eq!(
        anonymous
            .post("/v1/viewer/studies", body.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    for key in [
        tampered.as_str(),
        foreign_secret.as_str(),
        "",
        "lbk_nope",
        &org.client_secret,
    ] {
        let r = server.api(key).get("/v1/viewer/studies").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{key}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    // A second key made while the server runs works at once; the first still works.
    let second = server.admin(&[
        "create-api-key",
        "--org",
        &org.org_id,
        "--description",
        "CI",
    ]);
    let second_api = server.api(second["api_key"].as_str().unwrap());
    let s = second_api.create_study(body).await;
    assert_eq!(s["createdByApiKey"]["description"], "CI");
    assert_eq!(
        server
            .api(&org.api_key)
            .get("/v1/viewer/studies")
            .await
            .status,
        StatusCode::OK
    );

    // Neither the database nor the log holds a secret in clear.
    let secrets = [
        org.api_key.clone(),
        org.client_secret.clone(),
        second["api_key"].as_str().unwrap().to_owned(),
    ];
    let secret_parts: Vec<String> = secrets
        .iter()
        .map(|s| support::secret_part(s).to_owned())
        .collect();
    let stored = match backend {
        Backend::Sqlite => {
            // Both files (data and audit trail), with their write-ahead logs.
            let mut bytes = Vec::new();
            for db in [server.sqlite_path(), server.sqlite_audit_path()] {
                bytes.extend(std::fs::read(&db).unwrap());
                let mut wal = db.into_os_string();
                wal.push("-wal");
                bytes.extend(std::fs::read(wal).unwrap_or_default());
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(server.database_url().unwrap())
                .await
                .unwrap();
            let rows = sqlx::query(
                "SELECT secret_hash FROM api_keys UNION ALL SELECT secret_hash FROM oauth_clients",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(stored.len() > 64, "nothing read from the store");
    let log = server.log();
    for part in &secret_parts {
        assert!(
            !stored.contains(part.as_str()),
            "a secret is stored in clear"
        );
        assert!(!log.contains(part.as_str()), "a secret is in the log");
    }
}

async fn concurrent_creates_of_one_uid_make_one_study(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let api = server.api(&org.api_key);
    let uid = unique_uid();
    let attempts = (0..16).map(|i| {
        let api = api.clone();
        let body = json!({"severity": "normal", "studyDescription": format!("attempt {i}"), "studyInstanceUid": uid});
        tokio::spawn(async move { api.post("/v1/viewer/studies", body).await.status })
    });
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let listing = api.get("/v1/viewer/studies").await.body;
    assert_eq!(listing["studies"].as_array().unwrap().len(), 1);
}
