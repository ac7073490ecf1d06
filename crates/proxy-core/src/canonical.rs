//! JSON in one canonical form (object keys sorted, no whitespace), so a request
//! written another way hashes the same: the response cache's keys and the audit
//! trail's prompt hashes.

/// JSON with object keys sorted and no whitespace: the same request written another
/// way hashes the same (serde_json's map keeps insertion order when a crate in the
/// build asks it to, so the order is made here).
pub fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key.as_str(), out);
                out.push(b':');
                if let Some(inner) = map.get(key) {
                    write_canonical(inner, out);
                }
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// Written straight into `out`: no text allocated per key or value (the log chain
/// hashes every record this way).
fn write_scalar<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Into a Vec, a string or a scalar always serialises.
    let _ = serde_json::to_writer(&mut *out, value);
}
