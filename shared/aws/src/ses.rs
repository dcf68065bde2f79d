//! `Mailer` on SES v2 (`SendEmail`, simple content).

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use oratio_core::mail::{Mail, MailError, Mailer};

#[derive(Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    /// `from` must be an identity verified in SES.
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into() }
    }
}

fn content(text: &str) -> Result<Content, MailError> {
    Content::builder().data(text).charset("UTF-8").build().map_err(|e| MailError::Backend(e.into()))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(mail.to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                let transient = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
                    || matches!(e.code(), Some("TooManyRequestsException" | "LimitExceededException"));
                let source = anyhow!("{}", DisplayErrorContext(e));
                Err(if transient { MailError::Unavailable(source) } else { MailError::Backend(source) })
            }
        }
    }
}
