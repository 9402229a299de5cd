use crate::config::{init_logging, LogFormat, StoreArgs, WebhookKeyArgs};
use axum::serve::ListenerExt;
use clap::Args;
use lightbox_api::{ApiConfig, AppState, DicomConfig};
use lightbox_blob::BlobStore;
use lightbox_dicom::ScpConfig;
use lightbox_domain::webhook::RetrySchedule;
use lightbox_webhooks::{SendConfig, Sender, Worker, WorkerConfig};
use std::io::Write;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "LIGHTBOX_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Base URL clients reach this server at, for the links it hands out
    /// (default: from each request's Host header).
    #[arg(long, env = "LIGHTBOX_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds a study reroute link stays valid.
    #[arg(long, env = "LIGHTBOX_REROUTE_TTL_SECS", default_value_t = 300)]
    reroute_ttl_secs: u64,
    /// The prebuilt OHIF viewer to serve at `/ohif/` (`scripts/fetch-ohif DIR`
    /// fetches it); links then open their studies in it. Default:
    /// `<data-dir>/ohif` when it holds one, else links open Lightbox's
    /// built-in image page.
    #[arg(long, env = "LIGHTBOX_OHIF_DIR")]
    ohif_dir: Option<std::path::PathBuf>,
    /// Seconds a request may take before it is answered with 408.
    #[arg(long, env = "LIGHTBOX_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Requests per second each credential may make on average; 0 turns limiting off.
    #[arg(long, env = "LIGHTBOX_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    rate_limit_per_second: u32,
    /// Requests a credential may make in one burst.
    #[arg(long, env = "LIGHTBOX_RATE_LIMIT_BURST", default_value_t = 200)]
    rate_limit_burst: u32,
    /// Record the client address from `X-Forwarded-For` (set only behind a proxy that sets it).
    #[arg(long, env = "LIGHTBOX_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Where image files live: `s3://bucket/prefix` (credentials, region and
    /// endpoint from the standard AWS_* variables), else files under
    /// `<data-dir>/blobs`.
    #[arg(long, env = "LIGHTBOX_BLOB_URL")]
    blob_url: Option<String>,
    /// Largest image file accepted, in bytes.
    #[arg(long, env = "LIGHTBOX_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    max_upload_bytes: u64,
    /// Seconds an image's signed_url stays valid.
    #[arg(long, env = "LIGHTBOX_SIGNED_URL_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    signed_url_ttl_secs: u64,
    /// Seconds an upload or download through Lightbox may take.
    #[arg(long, env = "LIGHTBOX_UPLOAD_TIMEOUT_SECS", default_value_t = 600)]
    upload_timeout_secs: u64,
    /// Lifetime of Images API access tokens, in hours.
    #[arg(long, env = "LIGHTBOX_TOKEN_LIFETIME_HOURS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=24))]
    token_lifetime_hours: u64,
    /// Minutes without a request after which a web-app session ends.
    #[arg(long, env = "LIGHTBOX_WEB_IDLE_TIMEOUT_MINS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    web_idle_timeout_mins: u64,
    /// Hours after sign-in at which a web-app session ends, however active.
    #[arg(long, env = "LIGHTBOX_WEB_SESSION_HOURS", default_value_t = 12,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24))]
    web_session_hours: u64,
    /// Seconds variant of --web-idle-timeout-mins, for tests; overrides it when set.
    #[arg(long, env = "LIGHTBOX_WEB_IDLE_TIMEOUT_SECS", hide = true)]
    web_idle_timeout_secs: Option<u64>,
    /// Failed web sign-ins allowed per account in 15 minutes (four times as
    /// many per client address); 0 turns the limit off.
    #[arg(long, env = "LIGHTBOX_WEB_MAX_FAILED_SIGN_INS", default_value_t = 5)]
    web_max_failed_sign_ins: u32,
    #[arg(long, env = "LIGHTBOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address for the DICOM receiver (C-ECHO, C-STORE), e.g. `0.0.0.0:11112`;
    /// port 0 picks a free port. Off when not given.
    #[arg(long, env = "LIGHTBOX_DICOM_LISTEN")]
    dicom_listen: Option<String>,
    /// Largest DICOM instance accepted over DIMSE or STOW-RS, in bytes.
    #[arg(long, env = "LIGHTBOX_DICOM_MAX_INSTANCE_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    dicom_max_instance_bytes: u64,
    /// Largest STOW-RS request body, in bytes.
    #[arg(long, env = "LIGHTBOX_STOW_MAX_BYTES", default_value_t = 8 * 1024 * 1024 * 1024)]
    stow_max_bytes: u64,
    /// Largest PDU the DICOM receiver accepts (and announces), in bytes. A
    /// larger PDU aborts the association. It bounds association requests too,
    /// so it is at least 16 KiB (a sender proposing many contexts needs that).
    #[arg(long, env = "LIGHTBOX_DICOM_MAX_PDU", default_value_t = 116_794,
          value_parser = clap::value_parser!(u32).range(16_384..=16 * 1024 * 1024))]
    dicom_max_pdu: u32,
    /// DICOM associations served at once (more wait, then are closed).
    #[arg(long, env = "LIGHTBOX_DICOM_MAX_ASSOCIATIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    dicom_max_associations: u32,
    /// Seconds a DICOM association may stay silent before it is aborted.
    #[arg(long, env = "LIGHTBOX_DICOM_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    dicom_idle_timeout_secs: u64,
    /// Seconds an unindexed DICOM file (left by a crash mid-ingest) must be
    /// old before the sweep removes it; the sweep runs a minute after start
    /// (or after this many seconds, if fewer), then hourly.
    #[arg(long, env = "LIGHTBOX_DICOM_ORPHAN_AGE_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    dicom_orphan_age_secs: u64,
    /// Seconds without another instance of a study before its
    /// `study.images_received` webhook is sent: one event per burst, reporting
    /// the whole burst (a burst that never pauses is reported every ten times this).
    #[arg(long, env = "LIGHTBOX_DICOM_BURST_QUIET_SECS", default_value_t = 10.0,
          value_parser = parse_quiet_secs)]
    dicom_burst_quiet_secs: f64,
    /// Seconds one DICOM association may last.
    #[arg(
        long,
        env = "LIGHTBOX_DICOM_ASSOCIATION_TIMEOUT_SECS",
        default_value_t = 3600
    )]
    dicom_association_timeout_secs: u64,
    #[command(flatten)]
    webhook_key: WebhookKeyArgs,
    #[command(flatten)]
    oidc: OidcArgs,
    /// Let webhooks go to `http://` URLs and to private, loopback and
    /// link-local addresses (on-premises partners); otherwise HTTPS to public
    /// addresses only.
    #[arg(long, env = "LIGHTBOX_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Seconds one webhook delivery attempt may take.
    #[arg(long, env = "LIGHTBOX_WEBHOOK_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    webhook_timeout_secs: u64,
    /// Seconds before each retry of a failed webhook delivery (jittered by
    /// ±20 %); after the last, the delivery is dead. Default: Standard Webhooks'.
    #[arg(
        long,
        env = "LIGHTBOX_WEBHOOK_RETRY_DELAYS",
        default_value = "5,300,1800,7200,18000,36000,50400,72000,86400"
    )]
    webhook_retry_delays: String,
    /// Webhook deliveries in flight at once (per replica).
    #[arg(long, env = "LIGHTBOX_WEBHOOK_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    webhook_concurrency: u64,
    /// Seconds a synchronous webhook call may take: DICOM ingest's
    /// `patient_study.enrichment_requested` waits this long for the partner
    /// before seeding a new study without its answer; a study or session
    /// link's `study.access_requested` / `ephemeral.access_requested` before
    /// showing "images unavailable".
    #[arg(long, env = "LIGHTBOX_WEBHOOK_SYNC_TIMEOUT_SECS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    webhook_sync_timeout_secs: u64,
    /// Days delivered and dead webhook deliveries are kept (listable,
    /// redeliverable); 0 keeps them for ever.
    #[arg(long, env = "LIGHTBOX_WEBHOOK_RETENTION_DAYS", default_value_t = 30)]
    webhook_retention_days: u64,
}

/// Sign-in through an OpenID Provider (Keycloak, Entra ID…), for the web app.
#[derive(Args, Clone)]
pub struct OidcArgs {
    /// The OpenID Provider's issuer URL (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`). With --oidc-client-id it
    /// turns on "Sign in with …" on the sign-in page; needs --public-url.
    #[arg(long, env = "LIGHTBOX_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The client id registered at the provider for Lightbox.
    #[arg(long, env = "LIGHTBOX_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// The client's secret (Lightbox is a confidential client).
    #[arg(long, env = "LIGHTBOX_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// The provider's name on the button ("Sign in with NAME"); default
    /// "Sign in with single sign-on".
    #[arg(long, env = "LIGHTBOX_OIDC_DISPLAY_NAME")]
    oidc_display_name: Option<String>,
    /// Scopes to ask for besides `openid email`, comma- or space-separated.
    #[arg(long, env = "LIGHTBOX_OIDC_SCOPES")]
    oidc_scopes: Option<String>,
}

impl std::fmt::Debug for OidcArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcArgs")
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_client_id", &self.oidc_client_id)
            .field(
                "oidc_client_secret",
                &self.oidc_client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("oidc_display_name", &self.oidc_display_name)
            .field("oidc_scopes", &self.oidc_scopes)
            .finish()
    }
}

impl OidcArgs {
    /// The OIDC settings, `None` when OIDC is off; an error names what is missing.
    fn config(
        &self,
        public_url: Option<&str>,
    ) -> anyhow::Result<Option<lightbox_web::oidc::OidcConfig>> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (issuer, client_id) = match (set(&self.oidc_issuer), set(&self.oidc_client_id)) {
            (None, None) => return Ok(None),
            (Some(issuer), Some(client_id)) => (issuer, client_id),
            (Some(_), None) => anyhow::bail!(
                "OIDC sign-in needs --oidc-client-id (LIGHTBOX_OIDC_CLIENT_ID) as well as --oidc-issuer"
            ),
            (None, Some(_)) => anyhow::bail!(
                "OIDC sign-in needs --oidc-issuer (LIGHTBOX_OIDC_ISSUER) as well as --oidc-client-id"
            ),
        };
        let Some(public_url) = public_url
            .map(|u| u.trim_end_matches('/'))
            .filter(|u| !u.is_empty())
        else {
            anyhow::bail!(
                "OIDC sign-in needs --public-url (LIGHTBOX_PUBLIC_URL): the identity provider sends \
                 browsers back to <public-url>/ui/oidc/callback, which must be registered with it"
            );
        };
        let Some(client_secret) = set(&self.oidc_client_secret) else {
            anyhow::bail!(
                "OIDC sign-in needs --oidc-client-secret (LIGHTBOX_OIDC_CLIENT_SECRET): Lightbox \
                 signs in as a confidential client"
            );
        };
        let config = lightbox_web::oidc::OidcConfig {
            issuer,
            client_id,
            client_secret: Some(client_secret),
            display_name: set(&self.oidc_display_name),
            extra_scopes: self
                .oidc_scopes
                .as_deref()
                .unwrap_or_default()
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "openid" && *s != "email")
                .map(str::to_owned)
                .collect(),
            redirect_uri: format!("{public_url}/ui/oidc/callback"),
        };
        config.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(config))
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let oidc = args.oidc.config(args.public_url.as_deref())?;
    if let Some(oidc) = &oidc {
        tracing::info!(
            issuer = oidc.issuer,
            redirect_uri = oidc.redirect_uri,
            "OIDC sign-in is on; register the redirect URI with the provider"
        );
    }
    let store = args.store.open().await?;
    // Open worklists here show what other replicas write (PostgreSQL LISTEN).
    store.hear_other_replicas();
    let backend = match store.dialect() {
        lightbox_store::Dialect::Sqlite => format!(
            "sqlite ({})",
            args.store.data_dir.join("lightbox.db").display()
        ),
        lightbox_store::Dialect::Postgres => "postgresql".to_owned(),
    };
    let web_config = lightbox_web::WebConfig {
        public_url: args.public_url.clone(),
        idle_timeout: Duration::from_secs(
            args.web_idle_timeout_secs
                .unwrap_or(args.web_idle_timeout_mins * 60)
                .max(1),
        ),
        absolute_timeout: Duration::from_secs(args.web_session_hours * 3600),
        max_failed_sign_ins: args.web_max_failed_sign_ins,
        trust_forwarded_for: args.trust_forwarded_for,
        signed_url_ttl: Duration::from_secs(args.signed_url_ttl_secs),
        oidc,
        ..lightbox_web::WebConfig::default()
    };
    let ohif_dir = args.ohif_dir.clone().or_else(|| {
        let default = args.store.data_dir.join("ohif");
        default.join("index.html").is_file().then_some(default)
    });
    if let Some(dir) = &ohif_dir {
        lightbox_api::ohif::check(dir).map_err(|e| anyhow::anyhow!("--ohif-dir: {e}"))?;
        tracing::info!(dir = %dir.display(), "serving the OHIF viewer at /ohif/");
    }
    let config = ApiConfig {
        public_url: args.public_url,
        ohif_dir,
        web_idle_timeout: web_config.idle_timeout,
        reroute_ttl: Duration::from_secs(args.reroute_ttl_secs),
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        rate_limit_per_second: args.rate_limit_per_second,
        rate_limit_burst: args.rate_limit_burst,
        trust_forwarded_for: args.trust_forwarded_for,
        upload_timeout: Duration::from_secs(args.upload_timeout_secs),
        signed_url_ttl: Duration::from_secs(args.signed_url_ttl_secs),
        token_lifetime: Duration::from_secs(args.token_lifetime_hours * 3600),
        dicom: DicomConfig {
            max_instance_bytes: args.dicom_max_instance_bytes,
            max_stow_bytes: args.stow_max_bytes,
            spool_dir: args.store.data_dir.join("spool"),
            orphan_age: Duration::from_secs(args.dicom_orphan_age_secs),
            burst_quiet: Duration::from_secs_f64(args.dicom_burst_quiet_secs),
        },
        ..ApiConfig::default()
    };
    let blobs = BlobStore::from_url(
        args.blob_url.as_deref(),
        &args.store.data_dir,
        args.max_upload_bytes,
    )
    .map_err(|e| anyhow::anyhow!("blob storage: {e}"))?;
    let schedule = RetrySchedule::parse(&args.webhook_retry_delays)
        .map_err(|e| anyhow::anyhow!("--webhook-retry-delays: {e}"))?;
    let webhook_key = args.webhook_key.key()?;
    let mut state = AppState::new(store.clone(), blobs, config).await?;
    if let Some(key) = &webhook_key {
        let sender = Sender::new(SendConfig {
            timeout: Duration::from_secs(args.webhook_sync_timeout_secs),
            allow_private: args.webhook_allow_private,
            ..SendConfig::default()
        });
        let hook = crate::enrich::hook(store.clone(), key.clone(), sender.clone());
        state.ingest = state.ingest.clone().with_enrichment(hook);
        // Study and ephemeral-session links ask partners for images the archive lacks.
        state.partner = Some(lightbox_api::partner_access::PartnerAccess::new(
            key.clone(),
            sender,
            lightbox_api::partner_access::PartnerAccessConfig {
                allow_private: args.webhook_allow_private,
                max_total_bytes: args.stow_max_bytes,
                fetch_timeout: Duration::from_secs(args.upload_timeout_secs),
                page_wait: Duration::from_secs(args.request_timeout_secs) * 2 / 3,
            },
        ));
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let web = lightbox_web::WebState::new(
        store.clone(),
        state.signer.clone(),
        state.blobs.clone(),
        state.audit.clone(),
        web_config,
        stopped.clone(),
    );
    // In the background: a provider that is down must not delay start-up.
    tokio::spawn({
        let web = web.clone();
        async move { web.warm_oidc().await }
    });
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal();
    let dicom = match &args.dicom_listen {
        Some(dicom_addr) => {
            let dicom_listener = TcpListener::bind(dicom_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for DICOM on {dicom_addr}: {e}"))?;
            let dicom_addr = dicom_listener.local_addr()?;
            let config = ScpConfig {
                max_pdu: args.dicom_max_pdu,
                max_associations: args.dicom_max_associations as usize,
                idle_timeout: Duration::from_secs(args.dicom_idle_timeout_secs),
                association_timeout: Duration::from_secs(args.dicom_association_timeout_secs),
                ..ScpConfig::default()
            };
            tracing::info!(addr = %dicom_addr, "dicom listening on {dicom_addr}");
            // Printed before the HTTP line, which scripts wait for last.
            println!("dicom listening on {dicom_addr}");
            let mut stopped = stopped.clone();
            let ingest = state.ingest.clone();
            Some(tokio::spawn(lightbox_dicom::serve(
                dicom_listener,
                ingest,
                config,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    tokio::spawn(sweep_dicom_orphans(state.ingest.clone(), stopped.clone()));
    if matches!(store.dialect(), lightbox_store::Dialect::Postgres) {
        tokio::spawn(count_search_trigrams(store.clone(), stopped.clone()));
    }
    // The log record (JSON with `--log-format json`, on stderr) and one plain
    // line on stdout that scripts (and the test suite) wait for.
    tracing::info!(%addr, backend, "listening on http://{addr}");
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;

    // Peer addresses reach the audit trail through ConnectInfo.
    let app = lightbox_api::router_with(state, lightbox_web::router(web))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Started after the router, which installs the metrics recorder it counts into.
    let worker = match webhook_key {
        Some(key) => {
            let sender = Sender::new(SendConfig {
                timeout: Duration::from_secs(args.webhook_timeout_secs),
                allow_private: args.webhook_allow_private,
                ..SendConfig::default()
            });
            let config = WorkerConfig {
                concurrency: args.webhook_concurrency as usize,
                schedule,
                retention: (args.webhook_retention_days > 0)
                    .then(|| Duration::from_secs(args.webhook_retention_days * 86400)),
                ..WorkerConfig::default()
            };
            Some(Worker::new(store.clone(), sender, key, config).spawn(stopped.clone()))
        }
        None => {
            tracing::info!("webhook delivery is off: no --webhook-secret-key (events stay queued)");
            None
        }
    };
    // Without TCP_NODELAY a response written in parts (a multipart frame: its
    // head, the pixels, the closing boundary) waits for the client's delayed
    // ACK between them: up to 40 ms on Linux (BENCHMARKS.md, frames).
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // The DICOM receiver, the webhook worker and live streams (the
            // worklist's) stop, so their connections can close.
            let _ = stop.send(true);
        })
        .await?;
    if let Some(dicom) = dicom {
        let _ = dicom.await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Removes what a crash mid-ingest can leave (unindexed DICOM files, old
/// spool files): shortly after start, then hourly. Every replica may run it:
/// it removes only files no index row names and older than the orphan age.
async fn sweep_dicom_orphans(
    ingest: lightbox_dicom::Ingest,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let age = ingest.config().orphan_age;
    let mut every =
        tokio::time::interval(Duration::from_secs(3600).min(age.max(Duration::from_secs(1))));
    every.reset_after(Duration::from_secs(60).min(age));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        match ingest.sweep().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "dicom: swept orphaned files"),
            Err(e) => tracing::warn!(error = %e, "dicom: orphan sweep failed"),
        }
    }
}

/// Counts the worklist search's trigrams on PostgreSQL (0019, see
/// `Store::count_search_trigrams`) every few minutes. Replicas take turns: a
/// count already running elsewhere makes this one skip.
async fn count_search_trigrams(
    store: lightbox_store::Store,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(SEARCH_TRIGRAM_COUNT_EVERY);
    every.reset();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let started = std::time::Instant::now();
        match store.count_search_trigrams().await {
            Ok(count) if count.ran => tracing::debug!(
                marked_common = count.marked_common,
                postings_dropped = count.postings_dropped,
                ms = started.elapsed().as_millis() as u64,
                "search trigrams counted"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "counting search trigrams failed"),
        }
    }
}

/// How often [`count_search_trigrams`] runs. Between counts a trigram that
/// grows common keeps its postings, so this also bounds how far past
/// `COMMON_TRIGRAM_STUDIES` a search may read.
const SEARCH_TRIGRAM_COUNT_EVERY: Duration = Duration::from_secs(300);

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before exit.
/// The SIGTERM handler is installed when this is called, not when the future is
/// first polled: a SIGTERM right after "listening on" must still stop the server
/// gracefully rather than kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

/// `--dicom-burst-quiet-secs`: 0.1 s to an hour.
fn parse_quiet_secs(value: &str) -> Result<f64, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    if (0.1..=3600.0).contains(&secs) {
        Ok(secs)
    } else {
        Err("between 0.1 and 3600 seconds".into())
    }
}
