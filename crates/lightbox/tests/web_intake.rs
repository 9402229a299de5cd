//! Front-desk intake over real HTTP, on both backends: images found by patient
//! or coverage, their versions, deactivation with the version the page showed
//! (a stale page is refused), and another organization's images unseen.

mod support;
mod web_support;

use reqwest::StatusCode;
use support::{image_body, Backend, TestServer, PNG};
use web_support::signed_in;

on_both_backends!(
    the_front_desk_finds_a_patients_cards_and_deactivates_one,
    a_card_image_is_uploaded_to_its_link_and_marked_uploaded,
);

async fn the_front_desk_finds_a_patients_cards_and_deactivates_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let other = server.create_org("Other Clinic");
    let images = server.images_api(&org).await;
    let coverage = uuid::Uuid::new_v4().to_string();
    let mut ids = Vec::new();
    for side in ["FRONT", "BACK"] {
        let r = images
            .post("/images/v1", image_body(&coverage, side, "pat-42"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let theirs = server.images_api(&other).await;
    let r = theirs
        .post("/images/v1", image_body(&coverage, "FRONT", "pat-42"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let their_id = r.body["id"].as_str().unwrap().to_owned();

    let (mut desk, _) = signed_in(&server, &org, "Desk", false).await;
    let empty = desk.get("/ui/intake").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("Enter a patient id"));
    let by_patient = desk.get("/ui/intake?patient=pat-42").await;
    assert_eq!(by_patient.status, StatusCode::OK);
    assert_eq!(
        by_patient.body.matches("id=\"image-").count(),
        2,
        "{}",
        by_patient.body
    );
    assert!(
        !by_patient.body.contains(&their_id),
        "another organization's image"
    );
    assert!(by_patient.body.contains("(front)") && by_patient.body.contains("(back)"));
    let by_coverage = desk.get(&format!("/ui/intake?coverage={coverage}")).await;
    assert_eq!(by_coverage.body.matches("id=\"image-").count(), 2);
    let bad = desk.get("/ui/intake?coverage=not-a-uuid").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The page showed version 1; the API moves the front image on meanwhile.
    let front = &ids[0];
    let mut body = image_body(&coverage, "FRONT", "pat-42");
    body["display_name"] = "Card (front, retaken)".into();
    let r = images
        .send(
            reqwest::Method::PUT,
            &format!("/images/v1/{front}/1"),
            Some(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stale = desk
        .post(
            &format!("/ui/intake/images/{front}/deactivate"),
            &[("version", "1"), ("back", "/ui/intake?patient=pat-42")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.body.contains("changed this image"), "{}", stale.body);
    let done = desk
        .post(
            &format!("/ui/intake/images/{front}/deactivate"),
            &[("version", "2"), ("back", "/ui/intake?patient=pat-42")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/ui/intake?patient=pat-42");
    let r = images.get(&format!("/images/v1/{front}")).await;
    assert_eq!(r.body["deactivated"], true, "{}", r.body);
    assert_eq!(
        desk.get("/ui/intake?patient=pat-42")
            .await
            .body
            .matches("id=\"image-")
            .count(),
        1
    );

    // Another organization's image is not found, and stays active.
    let r = desk
        .post(
            &format!("/ui/intake/images/{their_id}/deactivate"),
            &[("version", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        theirs.get(&format!("/images/v1/{their_id}")).await.body["deactivated"],
        false
    );
    let r = desk
        .post("/ui/intake/images/nope/deactivate", &[("version", "x")])
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a version that is not a number is a bad form"
    );
}

/// The intake page's upload flow as its script drives it: create the image,
/// PUT the file to the link it gets, mark it uploaded. Wrong types, marking
/// before uploading and stale versions are refused with a message.
async fn a_card_image_is_uploaded_to_its_link_and_marked_uploaded(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let images = server.images_api(&org).await;
    let (mut desk, _) = signed_in(&server, &org, "Desk", false).await;
    let coverage = uuid::Uuid::new_v4().to_string();
    let form = |side: &'static str, file_type: &'static str| {
        vec![
            ("coverage", coverage.clone()),
            ("patient", "pat-7".to_owned()),
            ("side", side.to_owned()),
            ("file_name", "card.png".to_owned()),
            ("file_type", file_type.to_owned()),
        ]
    };
    let refused = post(&mut desk, "/ui/intake/images", &form("FRONT", "text/plain")).await;
    assert_eq!(
        refused.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        refused.body
    );
    let created = post(&mut desk, "/ui/intake/images", &form("FRONT", "image/png")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let image: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    let id = image["id"].as_str().unwrap().to_owned();
    let early = post(
        &mut desk,
        &format!("/ui/intake/images/{id}/uploaded"),
        &[("version", "1".into())],
    )
    .await;
    assert_eq!(
        early.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        early.body
    );
    assert!(early.body.contains("no verified file"), "{}", early.body);

    let http = reqwest::Client::new();
    let url = image["upload_url"].as_str().unwrap();
    let wrong = http
        .put(url)
        .body(b"not an image".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let put = http.put(url).body(PNG.to_vec()).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let stale = post(
        &mut desk,
        &format!("/ui/intake/images/{id}/uploaded"),
        &[("version", "7".into())],
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let done = post(
        &mut desk,
        &format!("/ui/intake/images/{id}/uploaded"),
        &[("version", "1".into())],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);

    let r = images.get(&format!("/images/v1/{id}")).await;
    assert_eq!(r.body["status"], "UPLOADED", "{}", r.body);
    assert_eq!(r.body["version"], 2);
    let list = desk.get(&format!("/ui/intake?coverage={coverage}")).await;
    assert!(
        list.body.contains("class=\"thumb\""),
        "the uploaded card shows: {}",
        list.body
    );
    let thumb = list
        .body
        .split("class=\"thumb\" src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let bytes = http.get(&thumb).send().await.unwrap();
    assert_eq!(bytes.status(), StatusCode::OK, "{thumb}");
    assert_eq!(bytes.bytes().await.unwrap().as_ref(), PNG);
}

async fn post(
    desk: &mut web_support::Browser,
    path: &str,
    fields: &[(&str, String)],
) -> web_support::Page {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    desk.post(path, &pairs).await
}
