use crate::config::{init_logging, LogFormat, StoreArgs};
use clap::Args;
use lightbox_api::{ApiConfig, AppState};
use lightbox_blob::BlobStore;
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
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let store = args.store.open().await?;
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
        ..lightbox_web::WebConfig::default()
    };
    let config = ApiConfig {
        public_url: args.public_url,
        reroute_ttl: Duration::from_secs(args.reroute_ttl_secs),
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        rate_limit_per_second: args.rate_limit_per_second,
        rate_limit_burst: args.rate_limit_burst,
        trust_forwarded_for: args.trust_forwarded_for,
        upload_timeout: Duration::from_secs(args.upload_timeout_secs),
        signed_url_ttl: Duration::from_secs(args.signed_url_ttl_secs),
        token_lifetime: Duration::from_secs(args.token_lifetime_hours * 3600),
        ..ApiConfig::default()
    };
    let blobs = BlobStore::from_url(
        args.blob_url.as_deref(),
        &args.store.data_dir,
        args.max_upload_bytes,
    )
    .map_err(|e| anyhow::anyhow!("blob storage: {e}"))?;
    let state = AppState::new(store.clone(), blobs, config).await?;
    let (stopping, stop_watch) = tokio::sync::watch::channel(false);
    let web = lightbox_web::WebState::new(
        store.clone(),
        state.signer.clone(),
        state.blobs.clone(),
        state.audit.clone(),
        web_config,
        stop_watch,
    );
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal();
    tracing::info!(%addr, backend, "lightbox ready");
    // One line on stdout that scripts (and the test suite) wait for.
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;

    // Peer addresses reach the audit trail through ConnectInfo.
    let app = lightbox_api::router_with(state, lightbox_web::router(web))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Live streams (the worklist's) end, so their connections can close.
            let _ = stopping.send(true);
        })
        .await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

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
