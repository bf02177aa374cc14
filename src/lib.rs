//! koinonia: a two-way SMS/MMS inbox for churches.
//!
//! Members text words and files to their church's number; leaders answer from a web dashboard;
//! every file is kept at full quality. The README's "How the code is laid out" says how
//! the modules fit: webhooks arrive at `web::api::webhooks` and become facts in
//! `flows::webhooks` and `flows::inbound`; files are fetched by `jobs` workers running
//! `flows::files` over `media::{fetch, ingest, store}`.

pub mod app;
pub mod carrier;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod flows;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod media;
pub mod net;
pub mod notify;
pub mod ops;
pub mod scan;
pub mod secrets;
pub mod sms;
pub mod state;
pub mod telemetry;
pub mod telnyx;
pub mod web;

pub use app::App;
pub use config::Config;
pub use state::AppState;
