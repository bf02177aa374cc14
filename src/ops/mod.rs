//! Operator commands: what `koinonia` does besides serving (see docs/cli.md).

pub mod backup;
pub mod bench;
pub mod cli;
pub mod doctor;
pub mod keys;
