//! The operator password: kept only as a SHA-256 digest and compared in constant time,
//! so neither memory dumps nor response timing reveal it.

use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct AdminPassword {
    digest: Option<[u8; 32]>,
}

impl AdminPassword {
    /// `None` (or empty) means no login: only allowed on loopback (see `config`).
    pub fn new(password: Option<&str>) -> Self {
        let digest = password.filter(|p| !p.is_empty()).map(digest);
        AdminPassword { digest }
    }

    pub fn required(&self) -> bool {
        self.digest.is_some()
    }

    pub fn verify(&self, attempt: &str) -> bool {
        match &self.digest {
            Some(expected) => constant_time_eq(expected, &digest(attempt)),
            None => true,
        }
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equal-length comparison whose time does not depend on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password() {
        let password = AdminPassword::new(Some("hunter2"));
        assert!(password.required());
        assert!(password.verify("hunter2"));
        assert!(!password.verify("hunter3"));
        assert!(!password.verify(""));
        assert!(!AdminPassword::new(Some("")).required());
    }
}
