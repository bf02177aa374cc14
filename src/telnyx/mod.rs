//! Telnyx: webhook verification and event shapes (the API client joins with outbound sending).

pub mod api;
pub mod webhook;
