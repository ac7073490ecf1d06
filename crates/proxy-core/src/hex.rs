//! Lowercase hexadecimal, as the log keeps its hashes and W3C trace contexts spell ids.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

pub fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// `N` bytes from exactly `2N` lowercase hex digits; `None` for anything else.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_lowercase_hex() {
        assert_eq!(encode(&[0x00, 0xf0, 0x6a]), "00f06a");
        assert_eq!(decode::<3>("00f06a"), Some([0x00, 0xf0, 0x6a]));
        assert_eq!(decode::<3>("00F06A"), None);
        assert_eq!(decode::<3>("00f06"), None);
        assert_eq!(decode::<1>("zz"), None);
    }
}
