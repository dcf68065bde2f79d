//! `Identity` on a Cognito user pool: `SignUp`, `ConfirmSignUp`, `InitiateAuth` with
//! `USER_PASSWORD_AUTH` and `REFRESH_TOKEN_AUTH`, `GlobalSignOut`, `AdminDeleteUser`.
//! The app client has no secret; users sign in with their email as username.

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType, AuthenticationResultType};
use oratio_core::identity::{Email, Identity, IdentityError, Password, Tokens, UserId};

#[derive(Clone)]
pub struct CognitoIdentity {
    client: Client,
    user_pool_id: String,
    client_id: String,
}

impl CognitoIdentity {
    pub fn new(client: Client, user_pool_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self { client, user_pool_id: user_pool_id.into(), client_id: client_id.into() }
    }
}

/// What a Cognito error means for the caller; `not_authorized` is what
/// `NotAuthorizedException` means in this operation.
fn classify<E>(err: SdkError<E, HttpResponse>, not_authorized: IdentityError) -> IdentityError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().unwrap_or_default().to_owned();
    let transient =
        matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_));
    let source = anyhow!("{}", DisplayErrorContext(err));
    match code.as_deref() {
        Some("UsernameExistsException" | "AliasExistsException") => IdentityError::DuplicateEmail,
        Some("InvalidPasswordException") => IdentityError::WeakPassword(message),
        Some("UserNotFoundException") => IdentityError::UnknownUser,
        Some("UserNotConfirmedException") => IdentityError::NotConfirmed,
        Some("NotAuthorizedException") => not_authorized,
        Some("CodeMismatchException") => IdentityError::InvalidCode,
        Some("ExpiredCodeException") => IdentityError::ExpiredCode,
        Some("TooManyRequestsException" | "TooManyFailedAttemptsException" | "LimitExceededException") => {
            IdentityError::Throttled { retry_after_secs: None }
        }
        Some("InternalErrorException") => IdentityError::Unavailable(source),
        _ if transient => IdentityError::Unavailable(source),
        _ => IdentityError::Backend(source),
    }
}

fn tokens(result: Option<AuthenticationResultType>) -> Result<Tokens, IdentityError> {
    let result = result
        .ok_or_else(|| IdentityError::Backend(anyhow!("Cognito asked for a challenge this client does not answer")))?;
    let missing = || IdentityError::Backend(anyhow!("Cognito returned no tokens"));
    Ok(Tokens {
        id_token: result.id_token.ok_or_else(missing)?,
        access_token: result.access_token.ok_or_else(missing)?,
        refresh_token: result.refresh_token,
        expires_in: u64::try_from(result.expires_in).unwrap_or(3600),
    })
}

#[async_trait]
impl Identity for CognitoIdentity {
    async fn sign_up(&self, email: &Email, password: &Password) -> Result<UserId, IdentityError> {
        let attribute = AttributeType::builder()
            .name("email")
            .value(email.as_str())
            .build()
            .map_err(|e| IdentityError::Backend(e.into()))?;
        let out = self
            .client
            .sign_up()
            .client_id(&self.client_id)
            .username(email.as_str())
            .password(password.expose())
            .user_attributes(attribute)
            .send()
            .await
            .map_err(|e| classify(e, IdentityError::DuplicateEmail))?;
        UserId::parse(&out.user_sub).map_err(|_| IdentityError::Backend(anyhow!("Cognito returned a malformed sub")))
    }

    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError> {
        let confirmed = self
            .client
            .confirm_sign_up()
            .client_id(&self.client_id)
            .username(email.as_str())
            .confirmation_code(code.trim())
            .send()
            .await;
        match confirmed {
            Ok(_) => Ok(()),
            // Cognito answers NotAuthorized for a user who is already confirmed.
            Err(e) => match classify(e, IdentityError::InvalidCode) {
                IdentityError::InvalidCode if code.trim().is_empty() => Err(IdentityError::InvalidCode),
                other => Err(other),
            },
        }
    }

    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError> {
        self.client
            .resend_confirmation_code()
            .client_id(&self.client_id)
            .username(email.as_str())
            .send()
            .await
            .map_err(|e| classify(e, IdentityError::UnknownUser))?;
        Ok(())
    }

    async fn sign_in(&self, email: &Email, password: &Password) -> Result<Tokens, IdentityError> {
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email.as_str())
            .auth_parameters("PASSWORD", password.expose())
            .send()
            .await
            .map_err(|e| classify(e, IdentityError::WrongPassword))?;
        tokens(out.authentication_result)
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, IdentityError> {
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await
            .map_err(|e| match classify(e, IdentityError::InvalidRefreshToken) {
                IdentityError::UnknownUser | IdentityError::Backend(_) => IdentityError::InvalidRefreshToken,
                other => other,
            })?;
        let mut tokens = tokens(out.authentication_result)?;
        tokens.refresh_token = None;
        Ok(tokens)
    }

    async fn sign_out(&self, access_token: &str) -> Result<(), IdentityError> {
        self.client
            .global_sign_out()
            .access_token(access_token)
            .send()
            .await
            .map_err(|e| classify(e, IdentityError::InvalidToken("Cognito refused the access token".into())))?;
        Ok(())
    }

    async fn delete_user(&self, email: &Email) -> Result<(), IdentityError> {
        match self.client.admin_delete_user().user_pool_id(&self.user_pool_id).username(email.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(e, IdentityError::UnknownUser) {
                IdentityError::UnknownUser => Ok(()),
                other => Err(other),
            },
        }
    }
}
