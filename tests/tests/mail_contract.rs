//! The `Mailer` contract on every adapter.

mod outbox {
    oratio_tests::mail_contract!(oratio_tests::fixtures::outbox_mailer);
}

mod ses {
    oratio_tests::mail_contract!(oratio_tests::fixtures::ses_mailer);
}
