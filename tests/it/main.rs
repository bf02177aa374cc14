//! Integration tests: koinonia started as `serve` starts it, driven over HTTP.

mod support;

mod cli;
mod dashboard;
mod db_contract;
mod doctor;
mod email;
mod group_commit;
mod groups;
mod hardening;
mod hardening_process;
mod inbound_flow;
mod instances;
mod key_rotation;
mod media_fetch;
mod member_export;
mod openapi;
mod operations;
mod outbound;
mod people;
mod previews;
mod process;
mod push;
mod read_api;
mod scanning;
mod statements;
mod store;
mod time_zones;
mod wakeups;
mod webhook_security;
