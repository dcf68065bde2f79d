//! Oratio's domain types, use cases and the ports its adapters implement.
//!
//! Nothing here touches a socket, a file or a cloud SDK: the embedded platform and the
//! Lambdas plug their own adapters behind these traits.

pub mod agents;
pub mod analytics;
pub mod api_keys;
pub mod audit;
pub mod blob;
pub mod connections;
pub mod conversations;
pub mod creation;
pub mod creator;
pub mod details;
pub mod embeddings;
pub mod endpointing;
pub mod events;
pub mod health;
pub mod history;
pub mod identity;
pub mod ids;
pub mod knowledge;
pub mod language;
pub mod llm;
pub mod mail;
pub mod notifications;
pub mod push;
pub mod ratelimit;
pub mod runtime;
pub mod secrets;
pub mod sign_in;
pub mod speech;
pub mod sse;
pub mod table;
pub mod telephony;
pub mod tenancy;
pub mod time;
pub mod tools;
pub mod turns;
pub mod voice;
pub mod workflow;
