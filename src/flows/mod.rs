//! The rules of koinonia, one module per capability. Each reads as a specification of what
//! happens; none imports `web` or axum. Handlers call one function here and render the result.

pub mod audit;
pub mod contacts;
pub mod inbound;
pub mod members;
pub mod orphans;
pub mod outbound;
pub mod retention;
