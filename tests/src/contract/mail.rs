//! The `Mailer` contract.

use std::sync::Arc;

use async_trait::async_trait;
use oratio_core::identity::Email;
use oratio_core::mail::{Mail, Mailer};

#[async_trait]
pub trait MailPeer: Send + Sync {
    fn mailer(&self) -> Arc<dyn Mailer>;
    /// (subject, text) of the mail delivered to `to`, oldest first.
    async fn delivered(&self, to: &Email) -> Vec<(String, String)>;
}

type Subject = Arc<dyn MailPeer>;

pub async fn mail_reaches_its_recipient_intact(peer: Subject) {
    let to = Email::parse(&format!("{}@example.com", crate::moto::unique_name("ada").to_lowercase())).expect("email");
    let other =
        Email::parse(&format!("{}@example.com", crate::moto::unique_name("bob").to_lowercase())).expect("email");
    for (n, who) in [(1, &to), (2, &other), (3, &to)] {
        let mail =
            Mail {
                to: who.clone(), subject: format!("Alert {n} — Grüße"), text: format!("Line one\nCode {n}00000\n")
            };
        peer.mailer().send(mail).await.expect("send");
    }
    let delivered = peer.delivered(&to).await;
    assert_eq!(
        delivered,
        [
            ("Alert 1 — Grüße".to_owned(), "Line one\nCode 100000\n".to_owned()),
            ("Alert 3 — Grüße".to_owned(), "Line one\nCode 300000\n".to_owned())
        ]
    );
}

#[macro_export]
macro_rules! mail_contract {
    ($factory:path) => {
        $crate::contract_cases!($factory, mail, [mail_reaches_its_recipient_intact]);
    };
}
