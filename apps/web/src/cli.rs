//! `backend.rs` is shared with `apps/api` (included by path, so the store selection
//! lives in one file) and names its configuration `crate::cli::Cli`.

pub use crate::config::WebArgs as Cli;
