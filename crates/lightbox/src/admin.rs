//! `lightbox admin …`: operator commands that work directly on the database.

use crate::config::{init_logging, LogFormat, StoreArgs};
use clap::{Args, Subcommand};
use lightbox_domain::audit::{AuditEvent, AuditFilter};
use lightbox_domain::dicom::{AeTitle, DicomPeer};
use lightbox_domain::invitation::{InvitationExpiredFilter, InvitationFilter, InvitationStatus};
use lightbox_domain::user::{InvitedSource, NewUser, UserFilter, UserLevel};
use lightbox_domain::{validate, ApiKeyId, OAuthClientId, OrgId, Timestamp};
use lightbox_store::{Credential, NewOrg};
use serde_json::json;

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)] // the variants are the command names: create-org, create-user, …
pub enum AdminCommand {
    /// Create an organization with its owner, an API key and an OAuth client.
    CreateOrg(CreateOrgArgs),
    /// Add a user to an organization.
    CreateUser(CreateUserArgs),
    /// Issue another API key for an organization.
    CreateApiKey(CreateCredentialArgs),
    /// Register another OAuth client (Images API) for an organization.
    CreateClient(CreateCredentialArgs),
    /// Revoke an API key: its next request gets 401.
    RevokeApiKey(RevokeArgs),
    /// Revoke an OAuth client: no new tokens, and its issued tokens stop working.
    RevokeClient(RevokeArgs),
    /// Show an organization's audit trail, newest first.
    Audit(AuditArgs),
    /// Change the called AE title DICOM senders use for an organization.
    SetAeTitle(SetAeTitleArgs),
    /// Allow a DICOM sender (calling AE title and/or address); once an
    /// organization lists any, only listed senders are accepted.
    AllowDicomPeer(AllowDicomPeerArgs),
    /// List an organization's AE title and allowed DICOM senders.
    ListDicomPeers(OrgArgs),
    /// Remove an allowed DICOM sender by its id.
    RemoveDicomPeer(RemoveDicomPeerArgs),
    /// Add a webhook endpoint; prints its signing secret (`whsec_…`) once.
    CreateWebhook(crate::webhook_admin::CreateWebhookArgs),
    /// List an organization's webhook endpoints.
    ListWebhooks(crate::webhook_admin::ListWebhooksArgs),
    /// Stop sending to an endpoint (its pending deliveries wait).
    DisableWebhook(crate::webhook_admin::WebhookArgs),
    /// Send to an endpoint again, pending deliveries first.
    EnableWebhook(crate::webhook_admin::WebhookArgs),
    /// Give an endpoint a new signing secret; the old one keeps signing during the overlap.
    RotateWebhookSecret(crate::webhook_admin::RotateWebhookArgs),
    /// Delete an endpoint and its deliveries.
    DeleteWebhook(crate::webhook_admin::WebhookArgs),
    /// Show webhook deliveries, newest first, with their status and last error.
    WebhookDeliveries(crate::webhook_admin::DeliveriesArgs),
    /// Send a delivery again (same id and body) on a fresh retry schedule.
    Redeliver(crate::webhook_admin::RedeliverArgs),
    /// Call an endpoint now with a signed `study.access_requested` and show its answer.
    TestWebhook(crate::webhook_admin::TestWebhookArgs),
    /// Print a one-time link with which a user sets a new web-app password
    /// (also for a user who never had one, e.g. the owner made by create-org).
    ResetPassword(UserLinkArgs),
    /// Print the web-app link of a user's pending invitation (it sets their password).
    InvitationLink(UserLinkArgs),
}

/// Arguments of `reset-password` and `invitation-link`.
#[derive(Args)]
pub struct UserLinkArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    email: String,
    /// Base URL people reach the server at; without it only the path is printed.
    #[arg(long, env = "LIGHTBOX_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct SetAeTitleArgs {
    #[arg(long)]
    org: String,
    /// 1 to 16 characters of A-Z, 0-9, `_` and `-`, unique on the server.
    #[arg(long)]
    ae_title: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct AllowDicomPeerArgs {
    #[arg(long)]
    org: String,
    /// The sender's own (calling) AE title.
    #[arg(long)]
    calling_ae_title: Option<String>,
    /// The sender's IP address.
    #[arg(long)]
    address: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct RemoveDicomPeerArgs {
    #[arg(long)]
    org: String,
    /// The allowed sender's id (`peer_…`, from allow-dicom-peer or list-dicom-peers).
    #[arg(long)]
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct OrgArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct AuditArgs {
    #[arg(long)]
    org: String,
    /// Only this action, e.g. `study.read`.
    #[arg(long)]
    action: Option<String>,
    /// Only events about this resource id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Only events since this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct CreateOrgArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    owner_email: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct CreateUserArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "New")]
    first_name: String,
    #[arg(long, default_value = "User")]
    last_name: String,
    #[arg(long, default_value = "Radiologist")]
    clinic_role: String,
    /// admin or member.
    #[arg(long, default_value = "member")]
    level: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `create-api-key` and `create-client`.
#[derive(Args)]
pub struct CreateCredentialArgs {
    #[arg(long)]
    org: String,
    /// A label for the credential (default: "API key" or "OAuth client").
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[arg(long)]
    org: String,
    /// The API key id (`api_key_id`) or OAuth client id (`client_id`).
    #[arg(long)]
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    match command {
        AdminCommand::CreateOrg(args) => create_org(args).await,
        AdminCommand::CreateUser(args) => create_user(args).await,
        AdminCommand::CreateApiKey(args) => create_api_key(args).await,
        AdminCommand::CreateClient(args) => create_client(args).await,
        AdminCommand::RevokeApiKey(args) => revoke(args, false).await,
        AdminCommand::RevokeClient(args) => revoke(args, true).await,
        AdminCommand::Audit(args) => audit(args).await,
        AdminCommand::SetAeTitle(args) => set_ae_title(args).await,
        AdminCommand::AllowDicomPeer(args) => allow_dicom_peer(args).await,
        AdminCommand::ListDicomPeers(args) => list_dicom_peers(args).await,
        AdminCommand::RemoveDicomPeer(args) => remove_dicom_peer(args).await,
        AdminCommand::CreateWebhook(args) => crate::webhook_admin::create(args).await,
        AdminCommand::ListWebhooks(args) => crate::webhook_admin::list(args).await,
        AdminCommand::DisableWebhook(args) => crate::webhook_admin::set_enabled(args, false).await,
        AdminCommand::EnableWebhook(args) => crate::webhook_admin::set_enabled(args, true).await,
        AdminCommand::RotateWebhookSecret(args) => crate::webhook_admin::rotate(args).await,
        AdminCommand::DeleteWebhook(args) => crate::webhook_admin::delete(args).await,
        AdminCommand::WebhookDeliveries(args) => crate::webhook_admin::deliveries(args).await,
        AdminCommand::Redeliver(args) => crate::webhook_admin::redeliver(args).await,
        AdminCommand::TestWebhook(args) => crate::webhook_admin::test(args).await,
        AdminCommand::ResetPassword(args) => user_link(args, true).await,
        AdminCommand::InvitationLink(args) => user_link(args, false).await,
    }
}

pub(crate) fn print(as_json: bool, value: serde_json::Value) {
    if as_json {
        println!("{value}");
    } else if let Some(fields) = value.as_object() {
        for (key, value) in fields {
            println!(
                "{key}: {}",
                value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string())
            );
        }
    }
}

async fn create_org(args: CreateOrgArgs) -> anyhow::Result<()> {
    validate::required_text("name", &args.name, 200)?;
    validate::email("owner-email", &args.owner_email)?;
    let store = args.store.open().await?;
    let org = store
        .create_org(&NewOrg {
            name: args.name,
            owner_email: args.owner_email,
        })
        .await?;
    print(
        args.json,
        json!({
            "org_id": org.org_id.to_string(),
            "user_id": org.owner.reference.id.to_string(),
            "api_key": org.api_key,
            "api_key_id": org.api_key_id.to_string(),
            "client_id": org.client_id.to_string(),
            "client_secret": org.client_secret,
            "dicom_ae_title": org.dicom_ae_title.to_string(),
        }),
    );
    Ok(())
}

async fn set_ae_title(args: SetAeTitleArgs) -> anyhow::Result<()> {
    let title = AeTitle::parse(&args.ae_title)?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    store.set_dicom_ae_title(org_id, &title).await?;
    print(
        args.json,
        json!({ "org_id": org_id.to_string(), "dicom_ae_title": title.to_string() }),
    );
    Ok(())
}

async fn allow_dicom_peer(args: AllowDicomPeerArgs) -> anyhow::Result<()> {
    let peer = DicomPeer::new(args.calling_ae_title.as_deref(), args.address.as_deref())?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let id = store.add_dicom_peer(org_id, &peer).await?;
    print(args.json, peer_json(&id, &peer));
    Ok(())
}

fn peer_json(id: &str, peer: &DicomPeer) -> serde_json::Value {
    json!({
        "id": id,
        "calling_ae_title": peer.calling_ae_title,
        "address": peer.address.map(|a| a.to_string()),
    })
}

async fn list_dicom_peers(args: OrgArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let title = store.dicom_ae_title(org_id).await?;
    let peers: Vec<_> = store
        .dicom_peers(org_id)
        .await?
        .iter()
        .map(|p| peer_json(&p.id, &p.peer))
        .collect();
    if args.json {
        println!(
            "{}",
            json!({ "dicom_ae_title": title.map(|t| t.to_string()), "peers": peers })
        );
    } else {
        println!(
            "dicom_ae_title: {}",
            title.map(|t| t.to_string()).unwrap_or_default()
        );
        if peers.is_empty() {
            println!("allowed senders: any");
        }
        for peer in peers {
            println!("{peer}");
        }
    }
    Ok(())
}

async fn remove_dicom_peer(args: RemoveDicomPeerArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    anyhow::ensure!(
        store.remove_dicom_peer(org_id, &args.id).await?,
        "organization {org_id} has no DICOM peer {}",
        args.id
    );
    print(args.json, json!({ "removed": args.id }));
    Ok(())
}

pub(crate) async fn existing_org(
    store: &lightbox_store::Store,
    org: &str,
) -> anyhow::Result<OrgId> {
    let org_id = OrgId::parse(org)?;
    anyhow::ensure!(store.org_exists(org_id).await?, "no organization {org_id}");
    Ok(org_id)
}

async fn create_user(args: CreateUserArgs) -> anyhow::Result<()> {
    let level = match UserLevel::parse(&args.level)? {
        UserLevel::Owner => anyhow::bail!("an organization has one owner, made by create-org"),
        level => level,
    };
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let user = store
        .create_user(
            org_id,
            &NewUser {
                email: args.email,
                first_name: args.first_name,
                last_name: args.last_name,
                middle_name: None,
                suffix1: None,
                suffix2: None,
                phone_number: None,
                clinic_role: args.clinic_role,
                level,
                can_manage_studies: true,
                has_dashboard_access: level == UserLevel::Admin,
                invited_source: InvitedSource::Dashboard,
            },
        )
        .await?;
    print(
        args.json,
        json!({ "user_id": user.reference.id.to_string(), "email": user.reference.email }),
    );
    Ok(())
}

impl CreateCredentialArgs {
    /// The store, the organization and the (checked) description to issue under.
    async fn open(
        &self,
        default_description: &str,
    ) -> anyhow::Result<(lightbox_store::Store, OrgId, String)> {
        let description = self
            .description
            .clone()
            .unwrap_or_else(|| default_description.to_owned());
        validate::required_text("description", &description, 200)?;
        let store = self.store.open().await?;
        let org_id = existing_org(&store, &self.org).await?;
        Ok((store, org_id, description))
    }
}

async fn create_api_key(args: CreateCredentialArgs) -> anyhow::Result<()> {
    let (store, org_id, description) = args.open("API key").await?;
    let (id, token) = store.create_api_key(org_id, &description, None).await?;
    print(
        args.json,
        json!({ "api_key_id": id.to_string(), "api_key": token }),
    );
    Ok(())
}

async fn create_client(args: CreateCredentialArgs) -> anyhow::Result<()> {
    let (store, org_id, description) = args.open("OAuth client").await?;
    let (id, secret) = store.create_oauth_client(org_id, &description).await?;
    print(
        args.json,
        json!({ "client_id": id.as_str(), "client_secret": secret }),
    );
    Ok(())
}

async fn revoke(args: RevokeArgs, client: bool) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let (key, client_id);
    let credential = if client {
        client_id = OAuthClientId::parse(&args.id)?;
        Credential::OAuthClient(&client_id)
    } else {
        key = ApiKeyId::parse(&args.id)?;
        Credential::ApiKey(key)
    };
    anyhow::ensure!(
        store.revoke_credential(org_id, credential).await?,
        "organization {org_id} has no live credential {}",
        args.id
    );
    print(args.json, json!({ "revoked": args.id }));
    Ok(())
}

async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(s) => Some(
            Timestamp::parse_rfc3339(s)
                .ok_or_else(|| anyhow::anyhow!("--since must be an RFC 3339 time"))?,
        ),
        None => None,
    };
    let filter = AuditFilter {
        action: args.action,
        resource_id: args.resource_id,
        since,
        ..AuditFilter::default()
    };
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let mut remaining = args.limit;
    let mut after = None;
    if !args.json {
        println!(
            "{:<24}  {:<13}  {:<26}  {:<10}  {:<38}  {:<36}  client",
            "time", "actor", "action", "outcome", "resource", "actor id"
        );
    }
    while remaining > 0 {
        let page = store
            .list_audit_events(org_id, &filter, remaining.min(100), after.as_ref())
            .await?;
        for e in &page.items {
            if args.json {
                println!(
                    "{}",
                    json!({
                        "event_id": e.id.as_str(), "occurred_at": e.occurred_at.to_rfc3339(),
                        "actor_type": e.actor_kind.as_str(), "actor_id": e.actor_id, "action": e.action,
                        "resource_type": e.resource_type, "resource_id": e.resource_id,
                        "outcome": e.outcome.as_str(), "status": e.status, "client_ip": e.client_ip,
                        "request_id": e.request_id,
                    })
                );
            } else {
                println!(
                    "{:<24}  {:<13}  {:<26}  {:<10}  {:<38}  {:<36}  {}",
                    e.occurred_at.to_rfc3339(),
                    e.actor_kind.as_str(),
                    e.action,
                    e.outcome.as_str(),
                    e.resource_id.as_deref().unwrap_or("-"),
                    e.actor_id.as_deref().unwrap_or("-"),
                    e.client_ip.as_deref().unwrap_or("-"),
                );
            }
        }
        remaining = remaining.saturating_sub(page.items.len() as u32);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// `reset-password` (`reset`) and `invitation-link`: a link for one user, recorded
/// in the audit trail as the operator's (the link itself is never recorded).
async fn user_link(args: UserLinkArgs, reset: bool) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let filter = UserFilter {
        email: Some(args.email.clone()),
        ..UserFilter::default()
    };
    let user = store
        .list_users(org_id, &filter, 1, None)
        .await?
        .items
        .pop()
        .ok_or_else(|| anyhow::anyhow!("organization {org_id} has no user {}", args.email))?;
    let user_id = user.reference.id.clone();
    let key = store
        .setting_or_insert(
            lightbox_api::SIGNING_KEY_SETTING,
            lightbox_domain::credentials::random_secret,
        )
        .await?;
    let signer = lightbox_blob::UrlSigner::new(key.into_bytes());
    let (path, action) = if reset {
        anyhow::ensure!(user.is_active, "user {user_id} has no access (revoked)");
        let current = store.password_hash(org_id, &user_id).await?;
        (
            lightbox_web::links::reset_path(&signer, org_id, &user_id, current.as_deref()),
            "user.reset_link",
        )
    } else {
        let filter = InvitationFilter {
            statuses: vec![InvitationStatus::Sent],
            expired: Some(InvitationExpiredFilter::NotExpired),
            user_id: Some(user_id.clone()),
            ..InvitationFilter::default()
        };
        let invitation = store
            .list_invitations(org_id, &filter, 1, None, Timestamp::now())
            .await?
            .items
            .pop()
            .ok_or_else(|| {
                anyhow::anyhow!("user {user_id} has no pending invitation; use reset-password")
            })?;
        (
            lightbox_web::links::invitation_path(&signer, &invitation),
            "invitation.link",
        )
    };
    store
        .append_audit_events(
            &[AuditEvent::by_operator(
                org_id,
                action,
                Some(user_id.to_string()),
            )],
            lightbox_store::Flush::Now,
        )
        .await?;
    let link = match &args.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    };
    print(
        args.json,
        json!({ "user_id": user_id.to_string(), "link": link }),
    );
    Ok(())
}
