//! The web app's pages at N studies: the worklist (full page and the htmx
//! fragment of rows) under the same filters as the API's list scenarios, and
//! a study page, each beside the JSON API's answer to the same query in the
//! same run (the baseline: same store query, no HTML). The bench signs in as
//! the seeded organization's owner through the real flow: `lightbox admin
//! reset-password` prints a one-time link, the link sets a password, and
//! `/ui/login` gives the session cookie.

use crate::cpu::Meter;
use crate::load::{drive, send, Stats};
use crate::{RunArgs, Setup};
use anyhow::{bail, Context};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "bench harbour quartz 7431";

/// Web scenarios: (name, worklist query string, the API list query it mirrors).
const PAGES: &[(&str, &str, &str)] = &[
    ("first page", "", ""),
    ("deep page (cursor)", "after={cursor}", "cursor={cursor}"),
    ("severity=stat", "severity=stat", "severity=stat"),
    ("unassigned", "assignee=none", "assignedTo=null"),
    (
        "search rare (arthrogram)",
        "q=arthrogram",
        "studyDescription=arthrogram",
    ),
    ("search common (chest)", "q=chest", "studyDescription=chest"),
];

struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
    auth: String,
}

/// Signs in and measures every page; `cursors` are deep-page cursors, `ids` study ids.
pub async fn measure(
    args: &RunArgs,
    setup: &Setup,
    base: &str,
    meter: &Meter,
    cursors: Arc<Vec<String>>,
    ids: Arc<Vec<String>>,
) -> anyhow::Result<Vec<Stats>> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?;
    let cookie = sign_in(args, setup, &http, base).await?;
    let client = Arc::new(Client {
        http,
        base: base.to_owned(),
        cookie,
        auth: format!("Bearer {}", setup.seeded.api_key),
    });
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for &(name, web_query, api_query) in PAGES {
        let kinds: [(&str, &str, bool); 3] = [
            ("web: worklist", web_query, false),
            ("web: rows fragment", web_query, true),
            ("web baseline: API list of 50", api_query, false),
        ];
        for (kind, query, fragment) in kinds {
            let scenario = format!("{kind}, {name}");
            if !args.wants(&scenario) {
                continue;
            }
            let api = kind.starts_with("web baseline");
            let (client, cursors) = (client.clone(), cursors.clone());
            let stats = drive(
                &scenario,
                meter,
                args.concurrency,
                duration,
                None,
                move |n| {
                    let (client, cursors) = (client.clone(), cursors.clone());
                    async move {
                        let query =
                            query.replace("{cursor}", &cursors[n as usize % cursors.len().max(1)]);
                        let request = if api {
                            client
                                .http
                                .get(format!(
                                    "{}/v1/viewer/studies?limit=50&{query}",
                                    client.base
                                ))
                                .header("authorization", &client.auth)
                        } else {
                            let request = client
                                .http
                                .get(format!("{}/ui/worklist?{query}", client.base))
                                .header("cookie", &client.cookie);
                            if fragment {
                                request.header("hx-request", "true")
                            } else {
                                request
                            }
                        };
                        let (_, timing) = send(request).await?;
                        Ok(timing)
                    }
                },
            )
            .await;
            eprintln!("{}", stats.row());
            results.push(stats);
        }
    }
    for (scenario, api) in [
        ("web: study page", false),
        ("web baseline: API study by id", true),
    ] {
        if !args.wants(scenario) || ids.is_empty() {
            continue;
        }
        let (client, ids) = (client.clone(), ids.clone());
        let stats = drive(
            scenario,
            meter,
            args.concurrency,
            duration,
            None,
            move |_| {
                let (client, ids) = (client.clone(), ids.clone());
                async move {
                    let id = &ids[rand::thread_rng().gen_range(0..ids.len())];
                    let request = if api {
                        client
                            .http
                            .get(format!("{}/v1/viewer/studies/{id}", client.base))
                            .header("authorization", &client.auth)
                    } else {
                        client
                            .http
                            .get(format!("{}/ui/studies/{id}", client.base))
                            .header("cookie", &client.cookie)
                    };
                    let (_, timing) = send(request).await?;
                    Ok(timing)
                }
            },
        )
        .await;
        eprintln!("{}", stats.row());
        results.push(stats);
    }
    Ok(results)
}

/// The owner's session cookie (`name=value`), through the operator's reset link.
async fn sign_in(
    args: &RunArgs,
    setup: &Setup,
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<String> {
    let mut admin = std::process::Command::new(&args.lightbox);
    admin
        .args(["admin", "reset-password", "--json", "--org"])
        .arg(&setup.seeded.org_id)
        .args(["--email", crate::seed::OWNER_EMAIL, "--data-dir"])
        .arg(&args.data_dir)
        .env("LIGHTBOX_LOG", "warn");
    match &args.database_url {
        Some(url) => admin.env("DATABASE_URL", url),
        None => admin.env_remove("DATABASE_URL"),
    };
    let out = admin
        .output()
        .context("run lightbox admin reset-password")?;
    if !out.status.success() {
        bail!(
            "admin reset-password: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let link = printed["link"].as_str().context("no link printed")?;
    // The link is on the public URL (or a placeholder host): keep its path.
    let path = link
        .find("/ui/")
        .map(|i| &link[i..])
        .context("the link has no /ui/ path")?;
    // The web app refuses cross-origin posts: say where the form came from.
    let set = http
        .post(format!("{base}{path}"))
        .header("origin", base)
        .form(&[("password", PASSWORD), ("confirm", PASSWORD)])
        .send()
        .await?;
    if !(set.status().is_success() || set.status().is_redirection()) {
        bail!("setting the password: HTTP {}", set.status());
    }
    let login = http
        .post(format!("{base}/ui/login"))
        .header("origin", base)
        .form(&[
            ("email", crate::seed::OWNER_EMAIL),
            ("password", PASSWORD),
            ("next", ""),
        ])
        .send()
        .await?;
    if !login.status().is_redirection() {
        bail!("sign-in: HTTP {}", login.status());
    }
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("session"))
        .and_then(|v| v.split(';').next())
        .context("sign-in set no session cookie")?;
    Ok(cookie.to_owned())
}
