//! A query parameter given twice is a 400 naming it, in each product's own
//! envelope, on every list endpoint, rather than a page for one of the values.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{image_with_file, unique_uid, Backend, TestServer};

on_both_backends!(
    a_parameter_given_twice_is_a_400_naming_it_on_every_viewer_list,
    a_parameter_given_twice_is_a_400_naming_it_on_every_images_list,
);

/// An integrator asks for `severity=stat&severity=high`, expecting either; every
/// Viewer and audit list says which parameter to fix instead of answering for one.
async fn a_parameter_given_twice_is_a_400_naming_it_on_every_viewer_list(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.api(&org.api_key);
    api.create_study(json!({"severity": "stat", "studyDescription": "CT Head", "studyInstanceUid": unique_uid()}))
        .await;

    let once = api.get("/v1/viewer/studies?severity=stat").await;
    assert_eq!(once.status, StatusCode::OK, "{}", once.body);
    assert_eq!(once.body["studies"].as_array().unwrap().len(), 1);

    for (path, parameter) in [
        ("/v1/viewer/studies?severity=stat&severity=high", "severity"),
        ("/v1/viewer/studies?severity=stat&severity=stat", "severity"),
        (
            "/v1/viewer/studies?limit=5&studyDescription=ct&limit=10",
            "limit",
        ),
        ("/v1/viewer/users?level=admin&level=reader", "level"),
        (
            "/v1/viewer/users/invitations?status=sent&status=revoked",
            "status",
        ),
        (
            "/v1/audit/events?action=study.read&action=study.create",
            "action",
        ),
        // Percent-encoded names are the same parameter.
        ("/v1/viewer/studies?cursor=a&%63ursor=b", "cursor"),
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["type"], "invalid_request", "{path}");
        assert_eq!(r.body["field"], parameter, "{path}");
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{parameter}`")) && message.contains("more than once"),
            "{path}: {message}"
        );
    }

    // A list is one comma-separated value, as the Viewer SDK sends it.
    let r = api
        .get("/v1/viewer/users/invitations?status=sent%2Crevoked")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The same mistake on the Images API gets the Images envelope.
async fn a_parameter_given_twice_is_a_400_naming_it_on_every_images_list(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme Imaging");
    let api = server.images_api(&org).await;
    image_with_file(&api, "patient-1").await;

    let once = api.get("/images/v1?patient_id=patient-1").await;
    assert_eq!(once.status, StatusCode::OK, "{}", once.body);
    assert_eq!(once.body.as_array().unwrap().len(), 1);

    for (path, parameter) in [
        (
            "/images/v1?patient_id=patient-1&patient_id=patient-2",
            "patient_id",
        ),
        (
            "/images/v1?sort_field=updatedAt&sort_field=updatedAt",
            "sort_field",
        ),
        (
            "/images/v1/updates/scan?since=2024-01-01T00:00:00Z&since=2025-01-01T00:00:00Z",
            "since",
        ),
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["errorName"], "BadRequestError", "{path}");
        assert_eq!(r.body["content"]["data"]["field"], parameter, "{path}");
        let message = r.body["content"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{parameter}`")),
            "{path}: {message}"
        );
    }
}
