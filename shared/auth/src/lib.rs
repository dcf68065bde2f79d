//! Cognito-shaped JSON Web Tokens: the one `TokenVerifier` both homes use (signature from
//! a JWKS URL, issuer, `token_use`, client id, expiry), and the RS256 signing key the
//! embedded identity provider issues tokens with.

mod signing;
mod verifier;

pub use signing::SigningKey;
pub use verifier::{JwksVerifier, VerifierConfig};
