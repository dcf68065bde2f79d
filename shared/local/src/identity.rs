//! `Identity` on one machine: users in the table, passwords hashed with argon2id, tokens
//! signed RS256 with a key kept in the data directory and shaped like Cognito's (so the
//! one JWKS verifier checks both), confirmation codes delivered through the `Mailer`.
//!
//! Layout: `IDENTITY#USER#<email>` / `USER` (the account), `IDENTITY#SUB#<sub>` / `USER`
//! (sub to email), `IDENTITY#CODE#<email>` / `CODE` (the pending confirmation code, as a
//! hash), `IDENTITY#REFRESH#<sha256>` / `REFRESH` (a refresh token, as a hash). A
//! user's `generation` goes up at sign-out, which retires every refresh token issued
//! before.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use oratio_auth::SigningKey;
use oratio_core::identity::{Email, Identity, IdentityError, Password, Tokens, UserId};
use oratio_core::mail::{Mail, Mailer};
use oratio_core::table::{Condition, Item, Key, Table, TableError, Update, Write};
use oratio_core::time::{now, now_epoch};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The app client id of the embedded platform's tokens.
pub const LOCAL_CLIENT_ID: &str = "oratio-local";
const ACCESS_TTL_SECS: i64 = 3600;
const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
const CODE_TTL_SECS: i64 = 24 * 3600;
const CODE_ATTEMPTS: i64 = 5;
/// How long an address whose guesses are spent gets no new code.
const CODE_LOCK_SECS: i64 = 15 * 60;

pub struct LocalIdentity {
    table: Arc<dyn Table>,
    mailer: Arc<dyn Mailer>,
    key: Arc<SigningKey>,
    issuer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    sub: UserId,
    email: Email,
    password_hash: String,
    confirmed: bool,
    created_at: DateTime<Utc>,
    generation: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshGrant {
    sub: UserId,
    email: Email,
    generation: i64,
}

fn account_key(email: &Email) -> Key {
    Key::new(format!("IDENTITY#USER#{email}"), "USER")
}

fn sub_key(sub: &UserId) -> Key {
    Key::new(format!("IDENTITY#SUB#{sub}"), "USER")
}

fn code_key(email: &Email) -> Key {
    Key::new(format!("IDENTITY#CODE#{email}"), "CODE")
}

fn refresh_key(hash: &str) -> Key {
    Key::new(format!("IDENTITY#REFRESH#{hash}"), "REFRESH")
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

fn backend(e: TableError) -> IdentityError {
    match e {
        TableError::Unavailable(_) | TableError::Conflict => IdentityError::Unavailable(e.into()),
        other => IdentityError::Backend(other.into()),
    }
}

/// Loads the signing key from `path`, creating it on first start.
pub fn load_or_create_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pem(&pem).map_err(anyhow::Error::msg).context("reading the identity signing key"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().map_err(anyhow::Error::msg)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::files::write_private(path, key.pem().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e).context("reading the identity signing key"),
    }
}

impl LocalIdentity {
    /// `issuer` is the `iss` of every token; its JWKS must be served at
    /// `{issuer}/.well-known/jwks.json` (as Cognito's is).
    pub fn new(
        table: Arc<dyn Table>,
        mailer: Arc<dyn Mailer>,
        key: Arc<SigningKey>,
        issuer: impl Into<String>,
    ) -> Self {
        Self { table, mailer, key, issuer: issuer.into() }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys, for the JWKS endpoint.
    pub fn jwks(&self) -> serde_json::Value {
        self.key.jwks()
    }

    async fn account(&self, email: &Email) -> Result<Option<Account>, IdentityError> {
        self.table.get(&account_key(email)).await.map_err(backend)?.map(|i| i.record().map_err(backend)).transpose()
    }

    /// Mails a fresh code. The wrong guesses made against the previous one still count:
    /// a resend renews the code, not the guess budget, and a spent budget is refused
    /// until its lock ends.
    async fn send_code(&self, email: &Email) -> Result<(), IdentityError> {
        let previous = self.table.get(&code_key(email)).await.map_err(backend)?;
        let attempts = previous.as_ref().and_then(|p| p.i64("attempts")).unwrap_or(0);
        if attempts >= CODE_ATTEMPTS {
            let retry = previous.and_then(|p| p.expires_at()).map(|at| (at - now_epoch()).max(1) as u64);
            return Err(IdentityError::Throttled { retry_after_secs: retry });
        }
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
        let item = Item::new(code_key(email))
            .with("code_hash", sha256_hex(&[email.as_str(), &code]))
            .with("attempts", attempts)
            .expiring_at(now_epoch() + CODE_TTL_SECS);
        self.table.put(item, None).await.map_err(backend)?;
        let mail = Mail {
            to: email.clone(),
            subject: "Your Oratio verification code".into(),
            text: format!("Your verification code is {code}\n\nIt works for 24 hours.\n"),
        };
        self.mailer.send(mail).await.map_err(|e| IdentityError::Backend(e.into()))
    }

    fn tokens(&self, account: &Account, refresh_token: Option<String>) -> Result<Tokens, IdentityError> {
        let now = now_epoch();
        let origin_jti = ulid::Ulid::new().to_string();
        let access = json!({
            "sub": account.sub,
            "iss": self.issuer,
            "client_id": LOCAL_CLIENT_ID,
            "origin_jti": origin_jti,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": now,
            "iat": now,
            "exp": now + ACCESS_TTL_SECS,
            "jti": ulid::Ulid::new().to_string(),
            "username": account.sub,
        });
        let id = json!({
            "sub": account.sub,
            "iss": self.issuer,
            "aud": LOCAL_CLIENT_ID,
            "origin_jti": origin_jti,
            "token_use": "id",
            "email": account.email,
            "email_verified": true,
            "cognito:username": account.sub,
            "auth_time": now,
            "iat": now,
            "exp": now + ACCESS_TTL_SECS,
            "jti": ulid::Ulid::new().to_string(),
        });
        let sign = |claims| self.key.sign(claims).map_err(|e| IdentityError::Backend(anyhow::Error::msg(e)));
        Ok(Tokens {
            id_token: sign(&id)?,
            access_token: sign(&access)?,
            refresh_token,
            expires_in: ACCESS_TTL_SECS as u64,
        })
    }
}

async fn hash_password(password: &Password) -> Result<String, IdentityError> {
    let password = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| IdentityError::Backend(anyhow::anyhow!("{e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| IdentityError::Backend(anyhow::anyhow!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| IdentityError::Backend(e.into()))?
}

async fn password_matches(password: &Password, hash: &str) -> Result<bool, IdentityError> {
    let (password, hash) = (password.expose().to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| IdentityError::Backend(anyhow::anyhow!("a stored hash: {e}")))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| IdentityError::Backend(e.into()))?
}

#[async_trait]
impl Identity for LocalIdentity {
    async fn sign_up(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError> {
        let account = Account {
            sub: UserId::parse(&uuid_like()).expect("a generated id is valid"),
            email: email.clone(),
            password_hash: hash_password(password).await?,
            confirmed: false,
            created_at: now(),
            generation: 0,
        };
        let writes = vec![
            Write::Put {
                item: Item::from_record(account_key(email), &account).map_err(backend)?,
                condition: Some(Condition::NotExists),
            },
            Write::Put {
                item: Item::new(sub_key(&account.sub)).with("email", email.as_str()),
                condition: Some(Condition::NotExists),
            },
        ];
        match self.table.transact(writes).await {
            Ok(()) => {}
            Err(TableError::ConditionFailed { .. }) => return Err(IdentityError::DuplicateEmail),
            Err(e) => return Err(backend(e)),
        }
        if let Err(e) = self.send_code(email).await {
            // An account whose code never left cannot be confirmed: take it back.
            let _ = self.delete_user(email).await;
            return Err(e);
        }
        Ok(account.sub)
    }

    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError> {
        let account = self.account(email).await?.ok_or(IdentityError::UnknownUser)?;
        if account.confirmed {
            return Ok(());
        }
        let pending = self.table.get(&code_key(email)).await.map_err(backend)?.ok_or(IdentityError::ExpiredCode)?;
        let expected = pending.str("code_hash").unwrap_or_default();
        if sha256_hex(&[email.as_str(), code.trim()]) != expected {
            let after = self
                .table
                .update(&code_key(email), Update::new().add("attempts", 1), Some(Condition::Exists))
                .await
                .map_err(backend)?;
            if after.i64("attempts").unwrap_or(0) >= CODE_ATTEMPTS {
                // No code works any more, and none is sent, until the lock ends.
                let locked = Item::new(code_key(email))
                    .with("code_hash", "")
                    .with("attempts", CODE_ATTEMPTS)
                    .expiring_at(now_epoch() + CODE_LOCK_SECS);
                self.table.put(locked, None).await.map_err(backend)?;
                return Err(IdentityError::ExpiredCode);
            }
            return Err(IdentityError::InvalidCode);
        }
        self.table
            .transact(vec![
                Write::Update {
                    key: account_key(email),
                    update: Update::new().set("confirmed", true),
                    condition: Some(Condition::Exists),
                },
                Write::Delete { key: code_key(email), condition: None },
            ])
            .await
            .map_err(backend)
    }

    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError> {
        let account = self.account(email).await?.ok_or(IdentityError::UnknownUser)?;
        if account.confirmed {
            return Ok(());
        }
        self.send_code(email).await
    }

    async fn sign_in(&self, email: &Email, password: &Password) -> Result<Tokens, IdentityError> {
        let account = self.account(email).await?.ok_or(IdentityError::UnknownUser)?;
        if !password_matches(password, &account.password_hash).await? {
            return Err(IdentityError::WrongPassword);
        }
        if !account.confirmed {
            return Err(IdentityError::NotConfirmed);
        }
        let mut secret = [0u8; 48];
        rand::rng().fill_bytes(&mut secret);
        let refresh_token = URL_SAFE_NO_PAD.encode(secret);
        let grant = RefreshGrant { sub: account.sub.clone(), email: email.clone(), generation: account.generation };
        let item = Item::from_record(refresh_key(&sha256_hex(&[&refresh_token])), &grant)
            .map_err(backend)?
            .expiring_at(now_epoch() + REFRESH_TTL_SECS);
        self.table.put(item, Some(Condition::NotExists)).await.map_err(backend)?;
        self.tokens(&account, Some(refresh_token))
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, IdentityError> {
        let grant: RefreshGrant = self
            .table
            .get(&refresh_key(&sha256_hex(&[refresh_token])))
            .await
            .map_err(backend)?
            .ok_or(IdentityError::InvalidRefreshToken)?
            .record()
            .map_err(backend)?;
        let account = self.account(&grant.email).await?.ok_or(IdentityError::InvalidRefreshToken)?;
        if account.sub != grant.sub || account.generation != grant.generation {
            return Err(IdentityError::InvalidRefreshToken);
        }
        self.tokens(&account, None)
    }

    async fn sign_out(&self, access_token: &str) -> Result<(), IdentityError> {
        let claims = self.key.verify(access_token).map_err(IdentityError::InvalidToken)?;
        let sub = claims["sub"].as_str().ok_or_else(|| IdentityError::InvalidToken("no subject".into()))?;
        let sub = UserId::parse(sub)?;
        let owner = self.table.get(&sub_key(&sub)).await.map_err(backend)?.ok_or(IdentityError::UnknownUser)?;
        let email = Email::parse(owner.str("email").unwrap_or_default())?;
        self.table
            .update(&account_key(&email), Update::new().add("generation", 1), Some(Condition::Exists))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_user(&self, email: &Email) -> Result<(), IdentityError> {
        let Some(account) = self.account(email).await? else { return Ok(()) };
        self.table
            .transact(vec![
                Write::Delete { key: account_key(email), condition: None },
                Write::Delete { key: sub_key(&account.sub), condition: None },
                Write::Delete { key: code_key(email), condition: None },
            ])
            .await
            .map_err(backend)
    }
}

/// A random UUID (v4 layout), the shape of Cognito's `sub`.
fn uuid_like() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
