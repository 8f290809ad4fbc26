//! Resource-group secrets: hashed with argon2id (random salt, PHC string) before they reach the
//! database, verified with the hash's constant-time comparison. Hashing costs tens of
//! milliseconds of CPU, so it runs on the blocking pool, never on a tokio worker. A [`Secret`]
//! never appears in `Debug` output or logs.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{DbError, DbResult};

/// A resource-group secret as sent by a client. `Debug` shows `Secret(<redacted>)`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Hashes a secret into an argon2id PHC string (on the blocking pool).
pub(super) async fn hash(secret: &Secret) -> DbResult<String> {
    let bytes = secret.0.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(&bytes, &salt)
            .map(|h| h.to_string())
            .map_err(|e| DbError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Hash(e.to_string()))?
}

/// Whether `secret` matches the stored PHC string (on the blocking pool).
pub(super) async fn verify(secret: &Secret, stored: String) -> DbResult<bool> {
    let bytes = secret.0.clone();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| DbError::Corrupt(e.to_string()))?;
        Ok(Argon2::default().verify_password(&bytes, &parsed).is_ok())
    })
    .await
    .map_err(|e| DbError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let s = Secret::new(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn hash_is_salted_and_verifies() {
        let s = Secret::new(b"hunter2".to_vec());
        let a = hash(&s).await.unwrap();
        let b = hash(&s).await.unwrap();
        assert_ne!(a, b, "random salt");
        assert!(!a.contains("hunter2"));
        assert!(a.starts_with("$argon2id$"));
        assert!(verify(&s, a.clone()).await.unwrap());
        assert!(!verify(&Secret::new(b"hunter3".to_vec()), a).await.unwrap());
    }
}
