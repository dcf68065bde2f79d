//! `Mailer` into an outbox in the table: the embedded platform's mail catcher, read at
//! `GET /local/outbox`. Mail is kept for seven days.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oratio_core::mail::{Mail, MailError, Mailer};
use oratio_core::table::{Index, Item, Key, Query, Table, TableError};
use oratio_core::time::{now, now_epoch};
use serde::{Deserialize, Serialize};

const KEEP_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    #[serde(flatten)]
    pub mail: Mail,
    pub sent_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Outbox {
    table: Arc<dyn Table>,
}

impl Outbox {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self { table }
    }

    /// The newest `limit` mails, newest first.
    pub async fn newest(&self, limit: usize) -> Result<Vec<SentMail>, TableError> {
        let page = self.table.query(Query::partition(Index::Primary, "OUTBOX").descending().limit(limit)).await?;
        page.items.iter().map(Item::record).collect()
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let sent = SentMail { mail, sent_at: now() };
        let key = Key::new("OUTBOX", ulid::Ulid::new().to_string());
        let item = Item::from_record(key, &sent)
            .map_err(|e| MailError::Backend(e.into()))?
            .expiring_at(now_epoch() + KEEP_SECS);
        self.table.put(item, None).await.map_err(|e| match e {
            TableError::Unavailable(_) => MailError::Unavailable(e.into()),
            other => MailError::Backend(other.into()),
        })?;
        tracing::info!(subject = %sent.mail.subject, "mail placed in the local outbox");
        Ok(())
    }
}
