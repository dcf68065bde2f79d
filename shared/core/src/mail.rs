//! The `Mailer` port: verification codes, invitations, alerts (SES v2 in AWS, an outbox
//! readable at `/local/outbox` on one machine).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::identity::Email;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("mail failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}
