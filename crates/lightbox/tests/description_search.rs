//! The description contains-filter through the trigram index (migration 0004):
//! same answers as a plain case-insensitive substring match, kept current on
//! update, paged by cursor, and never across organizations.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{unique_uid, Backend, TestServer};

on_both_backends!(contains_match_through_the_trigram_index);

async fn matching(api: &support::Api, needle: &str, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!(
            "/v1/viewer/studies?limit={limit}&studyDescription={}{cursor}",
            urlencode(needle)
        );
        let r = api.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        for s in r.body["studies"].as_array().unwrap() {
            out.push(s["studyDescription"].as_str().unwrap().to_owned());
        }
        match r.body["cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn contains_match_through_the_trigram_index(backend: Backend) {
    let server = TestServer::start(backend).await;
    let org = server.create_org("Acme");
    let other = server.create_org("Other");
    let api = server.api(&org.api_key);
    let descriptions = [
        "CT Chest W/O Contrast",
        "MR Shoulder Arthrogram Left",
        "XR Chest 2 Views",
        "Say \"cheese\" Protocol",
        "US Abdomen",
        "MR Knee ARTHROGRAM Right",
        "CT Head",
    ];
    let mut ids = Vec::new();
    for d in descriptions {
        let s = api
            .create_study(json!({"severity": "normal", "studyDescription": d, "studyInstanceUid": unique_uid()}))
            .await;
        ids.push(s["studyId"].as_str().unwrap().to_owned());
    }
    // The other organization's matches must never show.
    server
        .api(&other.api_key)
        .create_study(json!({"severity": "stat", "studyDescription": "Arthrogram elsewhere", "studyInstanceUid": unique_uid()}))
        .await;

    let newest_first = |want: &[usize]| -> Vec<String> {
        want.iter()
            .rev()
            .map(|&i| descriptions[i].to_owned())
            .collect()
    };
    // Three characters or more: through the index; shorter: the plain scan.
    assert_eq!(matching(&api, "arthrogram", 1).await, newest_first(&[1, 5]));
    assert_eq!(matching(&api, "ARTHRO", 10).await, newest_first(&[1, 5]));
    assert_eq!(matching(&api, "chest", 1).await, newest_first(&[0, 2]));
    assert_eq!(matching(&api, "st 2", 10).await, newest_first(&[2]));
    assert_eq!(matching(&api, "\"cheese\"", 10).await, newest_first(&[3]));
    assert_eq!(matching(&api, "ct", 1).await, newest_first(&[0, 6]));
    assert_eq!(matching(&api, "W/O", 10).await, newest_first(&[0]));
    assert_eq!(matching(&api, "zzz", 10).await, Vec::<String>::new());

    // An update moves a study in and out of the matches.
    let r = api
        .patch(
            &format!("/v1/viewer/studies/{}", ids[4]),
            json!({"studyDescription": "US Hip Arthrogram"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .patch(
            &format!("/v1/viewer/studies/{}", ids[1]),
            json!({"studyDescription": "MR Shoulder"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        matching(&api, "arthrogram", 1).await,
        vec![
            "MR Knee ARTHROGRAM Right".to_owned(),
            "US Hip Arthrogram".to_owned()
        ]
    );
    assert_eq!(matching(&api, "abdomen", 10).await, Vec::<String>::new());
}
