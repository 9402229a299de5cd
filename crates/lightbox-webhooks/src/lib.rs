//! Lightbox's webhooks: events signed the Standard Webhooks way, delivered
//! from the store's durable outbox, and the one-shot signed call the
//! synchronous events (someone waiting on the answer) are made with.
//!
//! # Layout
//! * `sign`: Standard Webhooks v1 signatures and the `whsec_` signing secret.
//! * `seal`: signing secrets at rest, sealed with the configured webhook
//!   secret key (a signing secret cannot be hashed: Lightbox must sign with it);
//!   `destination` opens an endpoint's into what `send` needs.
//! * `send`: one POST, with a timeout, no redirects, a size cap on the answer
//!   and the destination check (HTTPS, public addresses unless allowed) →
//!   an `Outcome`; `Sender::call` parses a synchronous answer strictly.
//! * `worker`: claim → send → record, with the retry schedule of
//!   `lightbox_domain::webhook`; the only place an `Outcome` is acted on.
//!
//! A synchronous call (the DICOM and viewer work plugs in here): find the
//! endpoints with `Store::webhook_destinations(org, api_key, type)`, open
//! one with `destination(key, endpoint)`, build the body with
//! `lightbox_domain::webhook::envelope`, and `Sender::call::<Answer>` it.
//!
//! Events and their `data` are `lightbox_domain::webhook`; the outbox rows
//! are written by `lightbox-store` in the transaction of the change they
//! report.

pub mod seal;
pub mod send;
pub mod sign;
pub mod worker;

pub use seal::{destination, SecretKey};
pub use send::{
    check_destination, CallError, Destination, Outcome, PublicOnly, SendConfig, Sender,
};
pub use sign::{signature_header, SigningSecret};
pub use worker::{Worker, WorkerConfig};
