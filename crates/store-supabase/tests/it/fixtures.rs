//! Values shared by the tests: the fixtures every store's tests use.

pub use store_conformance::{SECRET_A, SECRET_B, hash, ids, now_ms, record};
