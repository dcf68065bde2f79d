//! The ports every tenant-facing handler may use, built once per process (the embedded
//! platform) or per cold start (a Lambda), and shared as `Arc`s.

use std::sync::Arc;

use oratio_core::api_keys::UsageRecorder;
use oratio_core::blob::BlobStore;
use oratio_core::identity::{Identity, TokenVerifier};
use oratio_core::knowledge::DocumentReader;
use oratio_core::mail::Mailer;
use oratio_core::push::Push;
use oratio_core::ratelimit::RateLimiter;
use oratio_core::runtime::AgentRuntime;
use oratio_core::secrets::SecretBox;
use oratio_core::table::Table;
use oratio_core::turns::Turns;
use oratio_core::workflow::Workflow;

#[derive(Clone)]
pub struct Deps {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub workflow: Arc<dyn Workflow>,
    /// Where agents run.
    pub runtime: Arc<dyn AgentRuntime>,
    pub identity: Arc<dyn Identity>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub mailer: Arc<dyn Mailer>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    pub usage: Arc<UsageRecorder>,
    /// The tenant's dashboards, for live events.
    pub push: Arc<dyn Push>,
    /// Reads uploaded documents (bounded, in a child process) to refuse what agents
    /// could not read before anything is stored.
    pub documents: Arc<dyn DocumentReader>,
    pub conversations: ConversationSettings,
    /// The dashboard's origin, for links in emails (`DASHBOARD_URL` in AWS).
    pub dashboard_url: Arc<str>,
    /// Seals what tenants give the platform to keep (auth tokens, tools' secrets).
    pub secrets: Arc<dyn SecretBox>,
    /// Where tenant tools may send requests (public HTTPS in AWS; loopback too on one machine).
    pub egress: oratio_core::tools::EgressPolicy,
    pub telephony: Telephony,
}

/// How phone calls reach the platform.
#[derive(Clone)]
pub struct Telephony {
    /// Signs the grant the voice webhook gives a call's media stream.
    pub grant_key: Arc<Vec<u8>>,
    /// The public origin Twilio calls the webhook on (`PUBLIC_API_URL`; on one machine,
    /// `--public-url`), as Twilio signs it; without it, the request's `Host`.
    pub public_url: Option<Arc<str>>,
    /// Where Twilio opens the media stream (`wss://…/telephony/twilio/media`; in AWS the
    /// voice gateway's, `TWILIO_MEDIA_URL`); without it, the webhook's own host.
    pub media_url: Option<Arc<str>>,
}

pub use oratio_core::conversations::ConversationSettings;

impl Deps {
    /// The conversation turn service on these ports.
    pub fn turns(&self) -> Turns {
        Turns {
            table: self.table.clone(),
            runtime: self.runtime.clone(),
            push: self.push.clone(),
            mailer: self.mailer.clone(),
            dashboard_url: self.dashboard_url.clone(),
            settings: self.conversations,
        }
    }
}
