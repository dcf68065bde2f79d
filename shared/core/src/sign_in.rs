//! Signing in, with repeated failures throttled per email address (whichever identity
//! provider is behind), and every successful sign-in audited with its tenant; and
//! resending a confirmation code, throttled per email and per client.

use crate::audit;
use crate::identity::{Email, Identity, IdentityError, Password, TokenVerifier, Tokens};
use crate::ratelimit::{Decision, RateLimiter};
use crate::table::{Condition, Item, Key, Table, Update};
use crate::tenancy;
use crate::time::now_epoch;

/// Failed attempts allowed per email within a window before sign-in is refused.
pub const MAX_FAILURES: i64 = 5;
pub const WINDOW_SECS: i64 = 15 * 60;
/// Codes resent to one email within `WINDOW_SECS`.
pub const MAX_RESENDS: i64 = 3;
/// Codes one client may ask for per minute, whatever the emails.
pub const RESENDS_PER_CLIENT_PER_MINUTE: u32 = 10;

fn throttle_key(email: &Email) -> Key {
    Key::new(format!("THROTTLE#SIGNIN#{email}"), "THROTTLE")
}

fn resend_key(email: &Email) -> Key {
    Key::new(format!("THROTTLE#RESEND#{email}"), "THROTTLE")
}

/// Refused while the window's count at `key` has reached `max`.
async fn within(table: &dyn Table, key: &Key, field: &str, max: i64) -> Result<Option<Item>, IdentityError> {
    let record = table.get(key).await.map_err(unavailable)?;
    if let Some(record) = &record
        && record.i64(field).unwrap_or(0) >= max
    {
        let retry = record.expires_at().map(|at| (at - now_epoch()).max(1) as u64);
        return Err(IdentityError::Throttled { retry_after_secs: retry });
    }
    Ok(record)
}

/// Counts one more at `key`, opening a window when there is none. A count that fails to
/// be written is logged: the request it counts has already been served.
async fn count(table: &dyn Table, key: &Key, field: &str, existing: Option<Item>) {
    let counted = match existing {
        None => {
            let first = Item::new(key.clone()).with(field, 1).expiring_at(now_epoch() + WINDOW_SECS);
            table.put(first, Some(Condition::NotExists)).await
        }
        Some(_) => table.update(key, Update::new().add(field, 1), Some(Condition::Exists)).await.map(drop),
    };
    if let Err(e) = counted {
        tracing::warn!(cause = %format!("{e:#}"), key = %key.pk, "counting a throttled request failed");
    }
}

/// Sends a new confirmation code: at most `MAX_RESENDS` per email per window and
/// `RESENDS_PER_CLIENT_PER_MINUTE` per client (its address). The code's guess budget is
/// the identity provider's and survives a resend.
pub async fn resend_code(
    table: &dyn Table,
    limiter: &dyn RateLimiter,
    identity: &dyn Identity,
    email: &Email,
    client: &str,
) -> Result<(), IdentityError> {
    if let Decision::Limited { retry_after_secs } =
        limiter.check(&format!("resend-code#{client}"), RESENDS_PER_CLIENT_PER_MINUTE).await.map_err(unavailable)?
    {
        return Err(IdentityError::Throttled { retry_after_secs: Some(retry_after_secs) });
    }
    let key = resend_key(email);
    let sent = within(table, &key, "sent", MAX_RESENDS).await?;
    identity.resend_code(email).await?;
    count(table, &key, "sent", sent).await;
    Ok(())
}

fn unavailable(e: crate::table::TableError) -> IdentityError {
    IdentityError::Unavailable(e.into())
}

pub async fn sign_in(
    table: &dyn Table,
    identity: &dyn Identity,
    verifier: &dyn TokenVerifier,
    email: &Email,
    password: &Password,
) -> Result<Tokens, IdentityError> {
    let key = throttle_key(email);
    let failures = within(table, &key, "failures", MAX_FAILURES).await?;
    match identity.sign_in(email, password).await {
        Ok(tokens) => {
            if failures.is_some() {
                table.delete(&key, None).await.map_err(unavailable)?;
            }
            let claims = verifier
                .verify_access(&tokens.access_token)
                .await
                .map_err(|e| IdentityError::Backend(anyhow::anyhow!("a fresh access token did not verify: {e}")))?;
            let tenant = tenancy::membership(table, &claims.user_id)
                .await
                .map_err(|e| IdentityError::Backend(e.into()))?
                .map(|m| m.tenant_id.to_string())
                .unwrap_or_else(|| "-".into());
            audit!("sign_in", tenant = tenant, actor = claims.user_id);
            Ok(tokens)
        }
        Err(e @ (IdentityError::WrongPassword | IdentityError::UnknownUser)) => {
            count(table, &key, "failures", failures).await;
            tracing::info!(target: "audit", audit = true, action = "sign_in_failed", email = %email, "audit");
            Err(e)
        }
        Err(e) => Err(e),
    }
}
