//! Cryptography of koinonia: members' phone numbers at rest, leaders' passwords and sessions,
//! and HMAC-signed URLs.

pub mod password;
pub mod phone;
pub mod session;
pub mod signed_url;
pub mod tls;
