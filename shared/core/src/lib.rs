//! Oratio's domain types, use cases and the ports its adapters implement.
//!
//! Nothing here touches a socket, a file or a cloud SDK: the embedded platform and the
//! Lambdas plug their own adapters behind these traits.

pub mod blob;
pub mod connections;
pub mod health;
pub mod ids;
pub mod push;
pub mod table;
pub mod time;
