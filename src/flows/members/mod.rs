//! Members: naming, erasure and the export of everything kept about one.

pub mod export;
