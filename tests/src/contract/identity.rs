//! The `Identity` contract: sign-up to sign-out, with tokens the one verifier accepts.

use std::sync::Arc;

use async_trait::async_trait;
use oratio_core::identity::{Email, Identity, IdentityError, Password, TokenVerifier};

/// The identity under test, the verifier configured for its tokens, and a way to read the
/// confirmation codes it sends.
#[async_trait]
pub trait IdentityPeer: Send + Sync {
    fn identity(&self) -> Arc<dyn Identity>;
    fn verifier(&self) -> Arc<dyn TokenVerifier>;
    async fn code_for(&self, email: &Email) -> String;
    /// Whether a wrong code is refused (moto accepts any code).
    fn checks_codes(&self) -> bool;
}

type Subject = Arc<dyn IdentityPeer>;

fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@example.com")).expect("an email")
}

/// Every character class, because moto reads the pool's "not required" flags as
/// "required" when the Rust SDK leaves `false` out of the request.
fn password() -> Password {
    Password::parse("Correct-Horse-Battery-9").expect("a password")
}

async fn confirmed_user(peer: &Subject, who: &Email) -> oratio_core::identity::UserId {
    let user = peer.identity().sign_up(who, &password()).await.expect("sign-up");
    let code = peer.code_for(who).await;
    peer.identity().confirm(who, &code).await.expect("confirm");
    user
}

pub async fn a_confirmed_user_signs_in_with_tokens_the_verifier_accepts(peer: Subject) {
    let ada = email("ada");
    let user = confirmed_user(&peer, &ada).await;
    let tokens = peer.identity().sign_in(&ada, &password()).await.expect("sign-in");
    assert!(tokens.refresh_token.is_some() && tokens.expires_in > 0 && !tokens.id_token.is_empty());
    let claims = peer.verifier().verify_access(&tokens.access_token).await.expect("a valid access token");
    assert_eq!(claims.user_id, user);
    assert!(peer.verifier().verify_access(&tokens.id_token).await.is_err(), "an ID token is not an access token");
}

pub async fn a_second_sign_up_with_the_same_email_is_refused(peer: Subject) {
    let ada = email("ada");
    peer.identity().sign_up(&ada, &password()).await.expect("sign-up");
    let again = peer.identity().sign_up(&ada, &password()).await;
    assert!(matches!(again, Err(IdentityError::DuplicateEmail)), "{again:?}");
}

pub async fn an_unconfirmed_user_cannot_sign_in(peer: Subject) {
    let ada = email("ada");
    peer.identity().sign_up(&ada, &password()).await.expect("sign-up");
    let refused = peer.identity().sign_in(&ada, &password()).await;
    assert!(matches!(refused, Err(IdentityError::NotConfirmed)), "{refused:?}");
}

pub async fn wrong_password_and_unknown_user_are_told_apart(peer: Subject) {
    let ada = email("ada");
    confirmed_user(&peer, &ada).await;
    let wrong = peer.identity().sign_in(&ada, &Password::parse("Not-The-Right-Password-1").expect("p")).await;
    assert!(matches!(wrong, Err(IdentityError::WrongPassword)), "{wrong:?}");
    let unknown = peer.identity().sign_in(&email("nobody"), &password()).await;
    assert!(matches!(unknown, Err(IdentityError::UnknownUser)), "{unknown:?}");
}

pub async fn refresh_works_until_sign_out(peer: Subject) {
    let ada = email("ada");
    let user = confirmed_user(&peer, &ada).await;
    let tokens = peer.identity().sign_in(&ada, &password()).await.expect("sign-in");
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    let renewed = peer.identity().refresh(&refresh).await.expect("refresh");
    assert_eq!(peer.verifier().verify_access(&renewed.access_token).await.expect("valid").user_id, user);
    peer.identity().sign_out(&tokens.access_token).await.expect("sign-out");
    let refused = peer.identity().refresh(&refresh).await;
    assert!(matches!(refused, Err(IdentityError::InvalidRefreshToken)), "{refused:?}");
}

pub async fn a_made_up_refresh_token_is_refused(peer: Subject) {
    let refused = peer.identity().refresh("not-a-refresh-token").await;
    assert!(matches!(refused, Err(IdentityError::InvalidRefreshToken)), "{refused:?}");
}

pub async fn a_wrong_confirmation_code_is_refused(peer: Subject) {
    if !peer.checks_codes() {
        return;
    }
    let ada = email("ada");
    peer.identity().sign_up(&ada, &password()).await.expect("sign-up");
    let right = peer.code_for(&ada).await;
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let refused = peer.identity().confirm(&ada, wrong).await;
    assert!(matches!(refused, Err(IdentityError::InvalidCode)), "{refused:?}");
    peer.identity().confirm(&ada, &right).await.expect("the right code still works");
}

pub async fn a_deleted_user_frees_the_email(peer: Subject) {
    let ada = email("ada");
    peer.identity().sign_up(&ada, &password()).await.expect("sign-up");
    peer.identity().delete_user(&ada).await.expect("delete");
    peer.identity().delete_user(&ada).await.expect("deleting twice is fine");
    peer.identity().sign_up(&ada, &password()).await.expect("the email is free again");
}

#[macro_export]
macro_rules! identity_contract {
    ($factory:path) => {
        $crate::contract_cases!(
            $factory,
            identity,
            [
                a_confirmed_user_signs_in_with_tokens_the_verifier_accepts,
                a_second_sign_up_with_the_same_email_is_refused,
                an_unconfirmed_user_cannot_sign_in,
                wrong_password_and_unknown_user_are_told_apart,
                refresh_works_until_sign_out,
                a_made_up_refresh_token_is_refused,
                a_wrong_confirmation_code_is_refused,
                a_deleted_user_frees_the_email,
            ]
        );
    };
}
