//! Parameter wrappers that keep values out of debug logs.
//!
//! tokio-postgres logs every bound parameter with `{:?}` at debug level (through the
//! `log` crate, which the binary's tracing subscriber picks up). An upstream key bound as
//! a plain `&str` would appear in the log of anyone running with `--log debug`, and a log
//! batch would dump request bodies; these wrappers print a mask or a count instead.

use std::error::Error;
use std::fmt;

use bytes::BytesMut;
use proxy_core::keys::mask_key;
use serde::Serialize;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// An upstream key as a text parameter that debug-prints masked.
pub(crate) struct SecretParam<'a>(pub(crate) &'a str);

impl fmt::Debug for SecretParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_key(self.0))
    }
}

impl ToSql for SecretParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// A batch serialised as a JSON array, debug-printed as its length only.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Batch<T>(pub(crate) Vec<T>);

impl<T> fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} items]", self.0.len())
    }
}
