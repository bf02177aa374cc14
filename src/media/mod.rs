//! Media: downloading, inspecting and storing files at full quality.

pub mod export;
pub mod fetch;
pub mod ingest;
pub mod inspect;
pub mod mime;
pub mod names;
pub mod preview;
pub mod store;
