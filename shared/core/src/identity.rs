//! Who is calling: the `Identity` port (sign-up, sign-in, tokens; Cognito in AWS, an
//! embedded provider on one machine) and the `TokenVerifier` port (one JWKS-based
//! implementation for both).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::string_newtype;

/// Shortest password accepted (the user pool's policy says the same).
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A syntactically valid email address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                        && email.chars().all(|c| c.is_ascii_graphic() && c != '<' && c != '>' && c != ',')
                        && email.matches('@').count() == 1
                }
                None => false,
            };
        if valid { Ok(Self(email)) } else { Err(IdentityError::InvalidEmail) }
    }
}

string_newtype!(Email, IdentityError, Email::parse);

/// A password that meets the policy. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(IdentityError::WeakPassword(format!("use at least {MIN_PASSWORD_CHARS} characters")));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(IdentityError::WeakPassword(format!("use at most {MAX_PASSWORD_CHARS} characters")));
        }
        let distinct: std::collections::HashSet<char> = raw.chars().collect();
        if distinct.len() < 5 {
            return Err(IdentityError::WeakPassword("use more than a few different characters".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// For an attempt to sign in: any non-empty string (the policy may have changed since).
    pub fn attempt(raw: &str) -> Result<Self, IdentityError> {
        if raw.is_empty() || raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(IdentityError::WrongPassword);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The identity provider's id of a user (Cognito's `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok { Ok(Self(raw.to_owned())) } else { Err(IdentityError::InvalidToken("malformed subject".into())) }
    }
}

string_newtype!(UserId, IdentityError, UserId::parse);

/// What a successful sign-in (or refresh) returns.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    /// Absent on refresh: the refresh token stays the same.
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens(expires_in: {})", self.expires_in)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("that is not a valid email address")]
    InvalidEmail,
    #[error("the password is too weak: {0}")]
    WeakPassword(String),
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error("no account has this email")]
    UnknownUser,
    #[error("the password is wrong")]
    WrongPassword,
    #[error("the account is not confirmed yet: enter the code sent by email")]
    NotConfirmed,
    #[error("the confirmation code is wrong")]
    InvalidCode,
    #[error("the confirmation code has expired or was tried too often; ask for a new one")]
    ExpiredCode,
    #[error("the refresh token is not valid; sign in again")]
    InvalidRefreshToken,
    #[error("the access token is not valid: {0}")]
    InvalidToken(String),
    #[error("too many attempts; try again later")]
    Throttled { retry_after_secs: Option<u64> },
    #[error("the identity provider is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the identity provider failed")]
    Backend(#[source] anyhow::Error),
}

/// The identity provider.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Creates an unconfirmed user and emails a confirmation code.
    async fn sign_up(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError>;

    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError>;

    /// Emails a new confirmation code to an unconfirmed user.
    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError>;

    async fn sign_in(&self, email: &Email, password: &Password) -> Result<Tokens, IdentityError>;

    /// New ID and access tokens for a refresh token.
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, IdentityError>;

    /// Revokes every refresh token of the access token's user (Cognito's GlobalSignOut).
    async fn sign_out(&self, access_token: &str) -> Result<(), IdentityError>;

    /// Removes a user (undoing a registration that could not be completed).
    async fn delete_user(&self, email: &Email) -> Result<(), IdentityError>;
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub client_id: String,
    /// Epoch seconds.
    pub expires_at: i64,
}

/// Why a token was refused; every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token was given")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token's signing keys could not be fetched")]
    KeysUnavailable,
}

/// Checks access tokens: signature (JWKS), issuer, `token_use`, client id, expiry.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "ada@@example.com", "ada@.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn weak_passwords_are_refused_and_passwords_never_print() {
        assert!(matches!(Password::parse("short"), Err(IdentityError::WeakPassword(_))));
        assert!(matches!(Password::parse("aaaaaaaaaaaaaaaa"), Err(IdentityError::WeakPassword(_))));
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
